"""A routed read of a groups:G gist on its dev documents: answer from one group's tokens only, the group chosen
by the passage index that ``gistkv ask`` stores (``gistkv.core.routing``: the chunk of the document holding the
passage most similar to the question), against reading every group and against the group that truly holds the
fact (``gistkv.training.routes``, as ``train.gist_read: routed`` trains it). Every present question of the dev
documents that hold two or more facts, English and Korean, by dev group (seen wording, unseen text, unseen
family, keyed) and in all.

    python docs/probes/routed_read.py p-two-groups3 48          # the first 48 dev documents per language
    python docs/probes/routed_read.py p-two-routed3 120 /tmp/dev512/niah 48    # documents 48-119 of a larger draw
    python docs/probes/routed_read.py p-routed-text 120 /tmp/dev512/niah 0 routed    # the index-routed read only
"""
import json
import sys

from gistkv.core.compressor import load_compressor
from gistkv.core.gist import view_groups
from gistkv.core.kv import answer, compress
from gistkv.core.presence import PresenceIndex, load_embedder
from gistkv.core.routing import closest_group, token_of_chars
from gistkv.evaluation.evaluate import score_niah
from gistkv.training.routes import question_groups

probe, count = sys.argv[1], int(sys.argv[2])
niah = sys.argv[3] if len(sys.argv) > 3 else f"/work/probes/{probe}/niah"
start = int(sys.argv[4]) if len(sys.argv) > 4 else 0
routed_only = sys.argv[5:] == ["routed"]
c = load_compressor(f"/work/probes/{probe}/gist", base_dir="/work/main/models/base")
view = c.gist_view
embed = load_embedder("models/embedder")      # run from the repository root

counts = {}
for lang in ("en", "ko"):
    lines = open(f"{niah}/{lang}/dev.jsonl", encoding="utf-8").read().splitlines()
    for document in [d for d in map(json.loads, lines[start:count]) if len(d["facts"]) >= 2]:
        text = document["context"]
        whole = compress(c, text)
        index = PresenceIndex.build(text, embed, lambda chars: token_of_chars(c.layout, text, chars))
        groups = view_groups(view, whole.num_gist)
        truths = question_groups(document, c.layout, groups)
        fact_groups = question_groups(dict(document, questions=[dict(f, kind="present") | {"question": ""}
                                                                for f in document["facts"]]), c.layout, groups)
        shared = len(set(fact_groups)) < len(fact_groups)
        for question, truth in zip(document["questions"], truths):
            if question["kind"] != "present":
                continue
            routed = closest_group(index, question["question"], embed, view, whole)
            row = counts.setdefault((lang, document["group"], "facts share a chunk" if shared else "facts apart"), dict.fromkeys(
                ("questions", "router right", "every group", "true group", "index-routed group"), 0))
            row["questions"] += 1
            row["router right"] += routed == truth
            reads = (("every group", whole), ("true group", whole.only_group(truth, view)))
            for name, kv in reads[2 if routed_only else 0:] + (("index-routed group", whole.only_group(routed, view)),):
                row[name] += score_niah(answer(c, kv, question["question"], 16), question)["correct"]
for key, row in sorted(counts.items()):
    print(key, row)
for lang in ("en", "ko"):
    for shared in ("facts apart", "facts share a chunk"):
        rows = [row for key, row in counts.items() if key[0] == lang and key[2] == shared]
        print((lang, shared), {name: sum(row[name] for row in rows) for name in rows[0]} if rows else {})
