"""Ask a probe's gist about its own training documents, by the number of needles (facts + distractors) they hold.

    python docs/probes/train_docs_check.py p-adapted     # reads /work/probes/p-adapted/{gist,niah} (run_probe.sh)
"""
import json, sys
from gistkv.core.compressor import load_compressor
from gistkv.core.kv import compress, answer
from gistkv.evaluation.evaluate import score_niah   # the pipeline's rule: the first number is the key
probe = sys.argv[1]
c = load_compressor(f"/work/probes/{probe}/gist", base_dir="/work/main/models/base")
docs = [json.loads(l) for l in open(f"/work/probes/{probe}/niah/en/train.jsonl")]
longest = max(d["context_tokens"] for d in docs)     # 512 at the probe scale; p-toy3 trains up to 256
picked = [d for d in docs if d["context_tokens"] <= 140][:12] + [d for d in docs if d["context_tokens"] >= 0.9 * longest][:12]
stats = {}
for d in picked:
    kv = compress(c, d["context"])
    present = [q for q in d["questions"] if q.get("kind", "present") == "present"]
    n = len(d["facts"])
    for q in present:
        got = answer(c, kv, q["question"], 12).strip()
        key = (n, d["context_tokens"] >= 0.9 * longest)
        # answers rewritten by tape_first.py / kind_first.py ("second: 48213") are scored on their number
        words, _, number = q["answer"].rpartition(": ")
        ok = score_niah(got, {**q, "answer": number})["correct"]
        if words:     # and on the label or marker they name first
            marks = stats.setdefault("label named first", [0, 0])
            marks[0] += got.startswith(words + ":"); marks[1] += 1
        s = stats.setdefault(key, [0, 0]); s[0] += ok; s[1] += 1
        print(n, d["context_tokens"], q["answer"], "->", got[:30], "OK" if ok else "")
print({(k if isinstance(k, str) else f"{k[0]} facts, {longest if k[1] else 128} tok"): f"{v[0]}/{v[1]}"
       for k, v in sorted(stats.items(), key=str)})
