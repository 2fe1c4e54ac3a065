"""A two-step ask, measured without training: the gist is first asked what kind of number it holds (the kind
question of niah.train.kind_fraction), then the user's question; the answer is kept only when the question asks for
that kind, else the reader declines. Kinds are compared as nearest training labels under the multilingual USE
embedding (no threshold to tune): the question's nearest label against the nearest label of the gist's own answer.
On the probe's first held-out dev documents, beside the plain answers.

    python docs/probes/kind_gate.py p-decline-kind 32
"""
import sys
from collections import Counter

import numpy as np

from gistkv.core.compressor import load_compressor
from gistkv.core.kv import answer, compress
from gistkv.data.needles import decline_answer, kind_questions, load_families
from gistkv.evaluation.evaluate import score_niah
from gistkv.evaluation.retrieval import load_embedding_function
from gistkv.params import read_params
from gistkv.training.train_records import validation_documents

probe, count = sys.argv[1], int(sys.argv[2])
c = load_compressor(f"/work/probes/{probe}/gist", base_dir="/work/main/models/base")
embed = load_embedding_function("use", "/work/main/models/embedder")
families = load_families()
train_families = read_params(f"/work/probes/{probe}/params.yaml")["niah"]["families"]["train"]
labels = {lang: [families[name].label(lang) for name in train_families] for lang in ("en", "ko")}
label_vectors = {lang: np.asarray(embed(texts)) for lang, texts in labels.items()}


def nearest(lang: str, text: str) -> str:
    return labels[lang][int(np.argmax(label_vectors[lang] @ np.asarray(embed([text]))[0]))]


# The nearest-label rule itself: every training question must map to its own family's label.
for lang in labels:
    mapped = [nearest(lang, wording.format(name="Mina")) == families[name].label(lang)
              for name in train_families for wording in families[name].questions(lang)]
    print(f"{lang}: training questions mapped to their own label {sum(mapped)}/{len(mapped)}")

rows = []     # (cell, question, plain answer, the question's label, the index of the document's own label)
held = []     # per document: the nearest label of the gist's answer to the kind question
for document in validation_documents(f"/work/probes/{probe}/niah", ["en", "ko"], count):
    lang = document["lang"]
    kv = compress(c, document["context"])
    held.append(nearest(lang, answer(c, kv, kind_questions(lang)[0], 32).strip()))
    for question in document["questions"]:
        cell = (question["kind"], lang, document["group"] == "unseen_family")
        rows.append((cell, question, answer(c, kv, question["question"], 12), nearest(lang, question["question"]),
                     len(held) - 1))
# The control: each question gated by the kind the gist of another document of its language names (the next one), so
# a decline that needs no stored kind (any label but the asked one) shows up as the same count.
doc_lang = {index: cell[1] for cell, *_, index in rows}
def other(index: int) -> int:
    later = [i for i in range(index + 1, len(held)) if doc_lang[i] == doc_lang[index]]
    return later[0] if later else min(i for i in doc_lang if doc_lang[i] == doc_lang[index])
plain, gated, shuffled, kept, kept_shuffled, asked = (Counter() for _ in range(6))
for cell, question, said, wanted, index in rows:
    lang = cell[1]
    asked[cell] += 1
    plain[cell] += score_niah(said, question)["correct"]
    for count_kept, count_right, label in ((kept, gated, held[index]), (kept_shuffled, shuffled, held[other(index)])):
        count_kept[cell] += wanted == label
        count_right[cell] += score_niah(said if wanted == label else decline_answer(lang), question)["correct"]
for kind in ("present", "absent"):
    for lang in ("en", "ko"):
        for unseen in (False, True):
            cell = (kind, lang, unseen)
            print(f"{kind:<7} {lang} {'unseen family' if unseen else 'seen families'}: plain {plain[cell]}/{asked[cell]}, "
                  f"gated {gated[cell]}/{asked[cell]} (kept {kept[cell]}), "
                  f"another document's kind {shuffled[cell]}/{asked[cell]} (kept {kept_shuffled[cell]})")
for kind in ("present", "absent"):
    cells = [cell for cell in asked if cell[0] == kind]
    total = lambda counter: sum(counter[c] for c in cells)
    print(f"{kind}: plain {total(plain)}/{total(asked)}, gated {total(gated)} (kept {total(kept)}), "
          f"another document's kind {total(shuffled)} (kept {total(kept_shuffled)})")
