"""A probe's gist on its dev documents, every group read at once (no routing), per dev group (seen / unseen_text /
unseen_family / keyed) and language, present questions only; the totals last.

    python docs/probes/dev_groups.py p-single                          # reads /work/probes/p-single/{gist,niah}
    python docs/probes/dev_groups.py p-whole-long /tmp/niahbig/niah 120   # the first 120 documents per language of a draw
"""
import json, sys
from collections import defaultdict
from gistkv.core.compressor import load_compressor
from gistkv.core.kv import compress, answer
from gistkv.evaluation.evaluate import score_niah   # the pipeline's rule: the first number is the key
probe = sys.argv[1]
niah = sys.argv[2] if len(sys.argv) > 2 else f"/work/probes/{probe}/niah"
count = int(sys.argv[3]) if len(sys.argv) > 3 else None
c = load_compressor(f"/work/probes/{probe}/gist", base_dir="/work/main/models/base")
stats = defaultdict(lambda: [0, 0])
for lang in ("en", "ko"):
    for line in open(f"{niah}/{lang}/dev.jsonl", encoding="utf-8").read().splitlines()[:count]:
        d = json.loads(line)
        kv = compress(c, d["context"])
        for q in d["questions"]:
            if q.get("kind", "present") != "present":
                continue
            right = score_niah(answer(c, kv, q["question"], 12).strip(), q)["correct"]
            for cell in ((lang, d["group"]), (lang, "all")):
                stats[cell][0] += right; stats[cell][1] += 1
print({f"{lang} {group}": f"{a}/{n}" for (lang, group), (a, n) in sorted(stats.items())})
print("all:", sum(a for (_, g), (a, _) in stats.items() if g == "all"), "/", sum(n for (_, g), (_, n) in stats.items() if g == "all"))
