"""A probe's held-out checks again, with a longer answer cap: the training's checks stop at evaluate.max_new_tokens
(12), which cuts answers that say more than the number (docs/probes/kind_first.py's "a pass key: 48213", most of all
in Korean's byte-level tokens). Scored by the pipeline's rule (a present answer holds the key; a decline holds no
number), per language, with the answers printed.

    python docs/probes/held_out.py p-kind-first 32 40      # the first 32 held-out documents, 40 tokens per answer
"""
import sys
from collections import Counter

from gistkv.core.compressor import load_compressor
from gistkv.core.kv import answer, compress
from gistkv.evaluation.evaluate import score_niah
from gistkv.training.train_records import validation_documents

probe, count, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = load_compressor(f"/work/probes/{probe}/gist", base_dir="/work/main/models/base")
right, asked = Counter(), Counter()
for document in validation_documents(f"/work/probes/{probe}/niah", ["en", "ko"], count):
    kv = compress(c, document["context"])
    for question in document["questions"]:
        said = answer(c, kv, question["question"], tokens).strip()
        correct = score_niah(said, question)["correct"]
        cell = (question["kind"], document["lang"])
        right[cell] += correct
        asked[cell] += 1
        print(f"  {document['lang']} {document['group']:<13} {question['kind']:<7} {document['facts'][0]['family']:<18} "
              f"{'ok ' if correct else 'bad'} {said!r} (key {document['facts'][0]['key']})")
for (kind, lang), n in sorted(asked.items()):
    print(f"{kind} {lang}: {right[kind, lang]}/{n}")
print(f"present {right['present', 'en'] + right['present', 'ko']}, absent declined {right['absent', 'en'] + right['absent', 'ko']}")
