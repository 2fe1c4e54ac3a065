"""Choose the presence gate's threshold (evaluate.gate.min_similarity) on dev documents: no model, only the index.

    python docs/probes/presence_gate.py NIAH_ROOT      # reads NIAH_ROOT/{en,ko}/dev.jsonl, never test

For every dev question it prints the best passage's cosine (gistkv.core.presence, as stored: int8), the
AUC of present against absent questions per language and per kind of absent question (a family the
document lacks; a keyed family under a name it lacks), and the one threshold for both languages that
maximizes (absent declined - present declined), chosen on half the documents (by a hash of the id) and checked on
the other half, then on all; then one threshold per language, chosen and checked the same way. A larger dev draw than the pipeline's 48 documents per language:
make_niah with niah.dev.samples_per_length [120, 120] in a params copy (the dev families and passages only).
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from gistkv.core.presence import PresenceIndex, load_embedder

root = Path(sys.argv[1])
embed = load_embedder("models/embedder")      # run from the repository root


def question_rows(lang: str) -> list[dict]:
    rows = []
    for line in (root / lang / "dev.jsonl").read_text(encoding="utf-8").splitlines():
        document = json.loads(line)
        index = PresenceIndex.build(document["context"], embed)
        held = {fact["family"] for fact in document["facts"]}
        for question in document["questions"]:
            kind = question["kind"] if question["kind"] == "present" else (
                "absent, held family" if question["family"] in held else "absent, other family")
            rows.append({"lang": lang, "id": document["id"], "kind": kind, "passages": index.vectors.shape[0],
                         "length": document["target_tokens"],
                         "similarity": index.similarity(question["question"], embed)})
    return rows


def auc(rows: list[dict]) -> float:
    return roc_auc_score([row["kind"] == "present" for row in rows], [row["similarity"] for row in rows])


def declined(rows: list[dict], threshold: float) -> tuple[float, float]:
    """(share of absent questions declined, share of present questions declined)."""
    absent = [row["similarity"] < threshold for row in rows if row["kind"] != "present"]
    present = [row["similarity"] < threshold for row in rows if row["kind"] == "present"]
    return float(np.mean(absent)), float(np.mean(present))


def best_threshold(rows: list[dict]) -> float:
    grid = np.round(np.arange(0.0, 0.8, 0.005), 3)
    return float(max(grid, key=lambda t: (lambda d: d[0] - d[1])(declined(rows, t))))


rows = question_rows("en") + question_rows("ko")
for lang in ("en", "ko"):
    mine = [row for row in rows if row["lang"] == lang]
    by_kind = {kind: auc([row for row in mine if row["kind"] in ("present", kind)])
               for kind in ("absent, other family", "absent, held family")}
    print(f"{lang}: {len({row['id'] for row in mine})} documents, {len(mine)} questions, "
          f"{np.mean([row['passages'] for row in mine]):.0f} passages per document; AUC {auc(mine):.3f} "
          + "; ".join(f"{kind} {value:.3f} (n={sum(row['kind'] == kind for row in mine)})" for kind, value in by_kind.items()))
ids = sorted({row["id"] for row in rows})
# Halves by a hash of the id: the documents' order cycles through groups and lengths.
first = {doc_id for doc_id in ids if hashlib.sha256(doc_id.encode()).digest()[0] % 2 == 0}
halves = ([row for row in rows if row["id"] in first], [row for row in rows if row["id"] not in first])
chosen = best_threshold(halves[0])
print(f"threshold chosen on half A: {chosen}")
for name, part in (("A", halves[0]), ("B", halves[1]), ("all", rows)):
    for lang in ("en", "ko"):
        absent, present = declined([row for row in part if row["lang"] == lang], chosen)
        print(f"  {name:>4} {lang}: absent declined {absent:.1%}, present declined {present:.1%}")
chosen = best_threshold(rows)
print(f"threshold chosen on all documents: {chosen}")
for lang in ("en", "ko"):
    absent, present = declined([row for row in rows if row["lang"] == lang], chosen)
    print(f"  all {lang}: absent declined {absent:.1%}, present declined {present:.1%}")
    for length in sorted({row["length"] for row in rows}):      # more passages, a closer best match by chance
        absent, present = declined([row for row in rows if row["lang"] == lang and row["length"] == length], chosen)
        print(f"    {length} tokens: absent declined {absent:.1%}, present declined {present:.1%}")

# One threshold per language (Korean's present questions score lower: is one shared threshold leaving declines on
# the table?), chosen on half A and checked on half B, beside the shared one.
shared = best_threshold(halves[0])
for lang in ("en", "ko"):
    own = best_threshold([row for row in halves[0] if row["lang"] == lang])
    for name, threshold in (("shared", shared), ("own", own)):
        absent, present = declined([row for row in halves[1] if row["lang"] == lang], threshold)
        print(f"  B {lang}, {name} threshold {threshold}: absent declined {absent:.1%}, present declined {present:.1%}, "
              f"difference {absent - present:.1%}")
