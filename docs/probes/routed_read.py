"""A routed read of a groups:3 gist on its dev documents: answer from one group's tokens only, the group chosen
by the passage index that ``gistkv ask`` already stores (the stretch of the document holding the passage most
similar to the question), against reading every group and against the group that truly holds the fact.
Every present question of the dev documents that hold two or more facts, English and Korean.

    python docs/probes/routed_read.py p-two-groups3 48      # the first 48 dev documents per language
"""
import json
import sys

import numpy as np
from gist_groups import only_group, part_of

from gistkv.core.compressor import load_compressor
from gistkv.core.kv import answer, compress
from gistkv.core.presence import load_embedder, passages, unit_rows
from gistkv.evaluation.evaluate import score_niah

PARTS = 3
probe, count = sys.argv[1], int(sys.argv[2])
c = load_compressor(f"/work/probes/{probe}/gist", base_dir="/work/main/models/base")
embed = load_embedder("models/embedder")      # run from the repository root


def index_part(context: str, question: str) -> int:
    """The stretch holding the end of the passage most similar to the question (by characters: a stand-in
    for tokens that the index could store beside each passage)."""
    found = list(dict.fromkeys(passages(context)))
    best = found[int((unit_rows(embed(found)) @ unit_rows(embed([question]))[0]).argmax())]
    words = best.split()
    start = context.find(" ".join(words[:3])) if len(words) >= 3 else context.find(best)
    end = context.find(words[-1], max(start, 0)) + len(words[-1])
    return min(int(end / len(context) * PARTS), PARTS - 1)


counts = {}
for lang in ("en", "ko"):
    lines = open(f"/work/probes/{probe}/niah/{lang}/dev.jsonl", encoding="utf-8").read().splitlines()
    for document in [d for d in map(json.loads, lines[:count]) if len(d["facts"]) >= 2]:
        whole = compress(c, document["context"])
        for question in [q for q in document["questions"] if q["kind"] == "present"]:
            fact = next(f for f in document["facts"] if (f["family"], f["name"]) == (question["family"], question["name"]))
            truth, routed = part_of(document, fact, PARTS), index_part(document["context"], question["question"])
            shared = len({part_of(document, f, PARTS) for f in document["facts"]}) < len(document["facts"])
            row = counts.setdefault((lang, "facts share a stretch" if shared else "facts apart"), dict.fromkeys(
                ("questions", "router right", "every group", "true group", "index-routed group"), 0))
            row["questions"] += 1
            row["router right"] += routed == truth
            for name, kv in (("every group", whole), ("true group", only_group(whole, truth, PARTS)),
                             ("index-routed group", only_group(whole, routed, PARTS))):
                row[name] += score_niah(answer(c, kv, question["question"], 16), question)["correct"]
for key, row in sorted(counts.items()):
    print(key, row)
