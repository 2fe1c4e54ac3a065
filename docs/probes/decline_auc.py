"""Does a probe's gist know what it holds? On its held-out dev documents, the probability that the answer starts
with the decline ("The document does not say.") for absent and for present questions, and how well that
probability tells them apart (AUC: 0.5 = not at all, 1.0 = every absent question above every present one).
A gist that learned to decline only as a prior gives the same probability to both kinds.

    python docs/probes/decline_auc.py p-decline 32      # the first 32 held-out documents (train.validation_samples)
"""
import sys
from collections import defaultdict

import torch
from gist_forward import logits_after_gist

from gistkv.core.compressor import load_compressor
from gistkv.core.kv import answer, compress
from gistkv.core.prompt import answer_text, encode, query_text
from gistkv.data.needles import decline_answer
from gistkv.evaluation.evaluate import score_niah   # the pipeline's rule: a decline is an answer with no number
from gistkv.training.train_records import validation_documents


def auc(high: list[float], low: list[float]) -> float:
    """P(a random ``high`` value > a random ``low`` one), ties counting half."""
    return sum((a > b) + 0.5 * (a == b) for a in high for b in low) / (len(high) * len(low))


probe, count = sys.argv[1], int(sys.argv[2])
c = load_compressor(f"/work/probes/{probe}/gist", base_dir="/work/main/models/base")
p_decline = defaultdict(list)       # (kind, lang) -> P(first answer token = the decline's first token)
right = defaultdict(int)            # kind -> greedy answers scored right (absent: declined)
with torch.no_grad():
    for document in validation_documents(f"/work/probes/{probe}/niah", ["en", "ko"], count):
        kv = compress(c, document["context"])
        first = encode(c.tokenizer, answer_text(decline_answer(document["lang"])))[0]
        for question in document["questions"]:
            query = c.layout.query_ids(query_text(question["question"]))
            next_token = logits_after_gist(c, kv, query)[-1].float().softmax(-1)
            p_decline[question["kind"], document["lang"]].append(next_token[first].item())
            right[question["kind"]] += score_niah(answer(c, kv, question["question"], 12), question)["correct"]
for lang in ("en", "ko", "all"):
    pick = lambda kind: [p for (k, l), ps in p_decline.items() if k == kind and lang in (l, "all") for p in ps]
    absent, present = pick("absent"), pick("present")
    print(f"{lang}: P(decline) absent {sum(absent) / len(absent):.3f}, present {sum(present) / len(present):.3f}, "
          f"AUC {auc(absent, present):.3f} ({len(absent)} absent, {len(present)} present questions)")
print(f"greedy: present right {right['present']}, absent declined {right['absent']}")
