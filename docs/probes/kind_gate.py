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


plain, gated, asked = Counter(), Counter(), Counter()
for document in validation_documents(f"/work/probes/{probe}/niah", ["en", "ko"], count):
    lang = document["lang"]
    kv = compress(c, document["context"])
    held = nearest(lang, answer(c, kv, kind_questions(lang)[0], 32).strip())
    for question in document["questions"]:
        said = answer(c, kv, question["question"], 12)
        kept = nearest(lang, question["question"]) == held
        cell = (question["kind"], lang, document["group"] == "unseen_family")
        asked[cell] += 1
        plain[cell] += score_niah(said, question)["correct"]
        gated[cell] += score_niah(said if kept else decline_answer(lang), question)["correct"]
for kind in ("present", "absent"):
    for lang in ("en", "ko"):
        for unseen in (False, True):
            cell = (kind, lang, unseen)
            print(f"{kind:<7} {lang} {'unseen family' if unseen else 'seen families'}: plain {plain[cell]}/{asked[cell]}, "
                  f"gated {gated[cell]}/{asked[cell]}")
for kind in ("present", "absent"):
    cells = [cell for cell in asked if cell[0] == kind]
    print(f"{kind}: plain {sum(plain[c] for c in cells)}/{sum(asked[c] for c in cells)}, "
          f"gated {sum(gated[c] for c in cells)}/{sum(asked[c] for c in cells)}")
