"""A probe's held-out checks again, with a longer answer cap: the training's checks stop at evaluate.max_new_tokens
(12), which cuts answers that say more than the number (docs/probes/kind_first.py's "a pass key: 48213", most of all
in Korean's byte-level tokens). Scored by the pipeline's rule (a present answer holds the key; a decline holds no
number), per language, with the answers printed. For answers that start with a label ("label: ..."), also counts
whose kind the label names: the asked family's, the document's own, or another.

    python docs/probes/held_out.py p-kind-first 32 40      # the first 32 held-out documents, 40 tokens per answer
"""
import sys
from collections import Counter

from gistkv.core.compressor import load_compressor
from gistkv.core.kv import answer, compress
from gistkv.data.needles import load_families
from gistkv.evaluation.evaluate import score_niah
from gistkv.training.train_records import validation_documents

probe, count, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = load_compressor(f"/work/probes/{probe}/gist", base_dir="/work/main/models/base")
right, asked, named = Counter(), Counter(), Counter()
families = load_families()
for document in validation_documents(f"/work/probes/{probe}/niah", ["en", "ko"], count):
    kv = compress(c, document["context"])
    for question in document["questions"]:
        said = answer(c, kv, question["question"], tokens).strip()
        correct = score_niah(said, question)["correct"]
        cell = (question["kind"], document["lang"])
        right[cell] += correct
        asked[cell] += 1
        stored, lang = document["facts"][0]["family"], document["lang"]
        label = said.split(":")[0]
        # an absent question about the document's own (keyed) family under another name: no label can tell it apart
        own = question["kind"] == "absent" and question["family"] == stored
        whose = ("asked" if label == families[question["family"]].label(lang) and not own else
                 "stored" if label == families[stored].label(lang) else "other")
        named[question["kind"], "own family" if own else whose, correct] += 1
        print(f"  {lang} {document['group']:<13} {question['kind']:<7} asked {question['family']:<18} holds {stored:<18} "
              f"{'ok ' if correct else 'bad'} {said!r} (key {document['facts'][0]['key']})")
for (kind, lang), n in sorted(asked.items()):
    print(f"{kind} {lang}: {right[kind, lang]}/{n}")
for (kind, whose, correct), n in sorted(named.items()):
    print(f"{kind} questions whose answer's label names {whose}: {n} {'right' if correct else 'wrong'}")
print(f"present {right['present', 'en'] + right['present', 'ko']}, absent declined {right['absent', 'en'] + right['absent', 'ko']}")
