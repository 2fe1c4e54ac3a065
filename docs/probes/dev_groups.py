"""A probe's gist on its dev documents, per group (seen / unseen_text / unseen_family / keyed) and language.

    python docs/probes/dev_groups.py p-single        # reads /work/probes/p-single/{gist,niah}
"""
import json, sys
from collections import defaultdict
from gistkv.core.compressor import load_compressor
from gistkv.core.kv import compress, answer
from gistkv.evaluation.evaluate import score_niah   # the pipeline's rule: the first number is the key
probe = sys.argv[1]
c = load_compressor(f"/work/probes/{probe}/gist", base_dir="/work/main/models/base")
stats = defaultdict(lambda: [0, 0])
for lang in ("en", "ko"):
    for line in open(f"/work/probes/{probe}/niah/{lang}/dev.jsonl", encoding="utf-8"):
        d = json.loads(line)
        kv = compress(c, d["context"])
        for q in d["questions"]:
            if q.get("kind", "present") != "present":
                continue
            got = answer(c, kv, q["question"], 12).strip()
            s = stats[(lang, d["group"])]
            s[0] += score_niah(got, q)["correct"]; s[1] += 1
print({f"{lang} {group}": f"{a}/{n}" for (lang, group), (a, n) in sorted(stats.items())})
