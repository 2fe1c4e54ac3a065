"""A probe's gist on its held-out dev documents: the mean loss (nats per answer token, teacher-forced, as the
training's dev loss counts it) of present and absent questions apart. Why the dev loss can rise while held-out
accuracy rises: a run that never trained absent questions puts its mass on a number where the decline belongs.

    python docs/probes/answer_nll.py p-ladder2 32      # the first 32 held-out documents (train.validation_samples)
"""
import sys
from collections import defaultdict

import torch
import torch.nn.functional as F
from gist_forward import logits_after_gist

from gistkv.core.compressor import load_compressor
from gistkv.core.kv import compress
from gistkv.core.prompt import answer_text, encode, query_text
from gistkv.training.train_records import validation_documents

probe, count = sys.argv[1], int(sys.argv[2])
c = load_compressor(f"/work/probes/{probe}/gist", base_dir="/work/main/models/base")
nll = defaultdict(list)          # kind -> per-question mean nats per answer token
with torch.no_grad():
    for document in validation_documents(f"/work/probes/{probe}/niah", ["en", "ko"], count):
        kv = compress(c, document["context"])
        for question in document["questions"]:
            query = c.layout.query_ids(query_text(question["question"]))
            target = encode(c.tokenizer, answer_text(question["answer"])) + list(c.layout.end_ids)
            logits = logits_after_gist(c, kv, query + target)[len(query) - 1:-1]   # the positions that predict the answer
            nll[question["kind"]].append(F.cross_entropy(logits.float(), torch.tensor(target)).item())
for kind, values in sorted(nll.items()):
    print(f"{kind}: {len(values)} questions, mean {sum(values) / len(values):.2f} nats/token")
everything = [value for values in nll.values() for value in values]
print(f"all: mean {sum(everything) / len(everything):.2f} (the dev loss averages over answer tokens, not questions)")
