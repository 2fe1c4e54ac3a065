"""How to cut a document into passages for the presence gate, and which embedder: AUC of present against absent
dev questions for four cuts (what chose gistkv.core.presence.passages). Reads dev only.

    python docs/probes/passage_cuts.py use NIAH_ROOT en,ko        # NIAH_ROOT/{lang}/dev.jsonl
    python docs/probes/passage_cuts.py minilm NIAH_ROOT en        # English only
"""

import json
import re
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from gistkv.core.presence import unit_rows
from gistkv.evaluation.retrieval import load_embedding_function

embed = load_embedding_function(sys.argv[1], "models/embedder")      # run from the repository root
root, langs = Path(sys.argv[2]), sys.argv[3].split(",")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def windows(text: str, width: int) -> list[str]:
    words, step = text.split(), max(1, width // 2)
    return [" ".join(words[i:i + width]) for i in range(0, max(1, len(words) - step), step)]


CUTS = {
    "sentences": lambda text: [s for s in SENTENCE_END.split(text) if s.strip()],
    "sentences, long ones as 12-word windows": lambda text: [
        part for s in SENTENCE_END.split(text) if s.strip() for part in ([s] if len(s.split()) <= 16 else windows(s, 12))],
    "8-word windows": lambda text: windows(text, 8),
    "16-word windows": lambda text: windows(text, 16),
}
for lang in langs:
    documents = [json.loads(line) for line in (root / lang / "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    for name, cut in CUTS.items():
        rows, counts = [], []
        for document in documents:
            passages = unit_rows(embed(cut(document["context"])))
            counts.append(len(passages))
            held = {fact["family"] for fact in document["facts"]}
            for question in document["questions"]:
                kind = "present" if question["kind"] == "present" else ("held" if question["family"] in held else "other")
                rows.append((kind, float((passages @ unit_rows(embed([question["question"]]))[0]).max())))
        keyed = [row for row in rows if row[0] != "other"]
        print(f"{lang} {name}: {np.mean(counts):.0f} passages per document, AUC "
              f"{roc_auc_score([k == 'present' for k, _ in rows], [s for _, s in rows]):.3f}, held family under another "
              f"name {roc_auc_score([k == 'present' for k, _ in keyed], [s for _, s in keyed]):.3f}", flush=True)
