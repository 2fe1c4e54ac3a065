"""Flat metrics of one method on one dataset, from the evaluation's rows (``gistkv.evaluation.evaluate``).

Accuracy is over questions whose document holds the answer (``present``), with a Wilson interval, by
group and by context length; ``absent_declined`` is the share of questions about a fact the document
does not hold that were declined (no number asserted) — a model that never gives a number declines all
of them, so read it beside ``present_declined`` (present questions answered without a number) and
``document_accuracy`` (documents whose every question was answered right); ``wrong_number_rate``
counts present questions answered with another number. Costs are medians over documents, per context length:
``first_answer_s`` = the document's one-off cost + its first question, ``per_question_s`` = one-off +
all its questions, divided by their number.

    metrics = niah_metrics(rows_of_one_method)
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from gistkv.evaluation.scoring import wilson_interval


def median(values) -> float:
    values = [value for value in values if value == value]
    return round(statistics.median(values), 6) if values else float("nan")


def rate(rows: list[dict], key: str, prefix: str) -> dict:
    hits, total = sum(bool(row[key]) for row in rows), len(rows)
    if not total:
        return {}
    low, high = wilson_interval(hits, total)
    return {prefix: round(hits / total, 4), f"{prefix}_ci_low": round(low, 4), f"{prefix}_ci_high": round(high, 4),
            f"n_{prefix}": total}


def by(rows: list[dict], key: str) -> dict:
    groups = defaultdict(list)
    for row in rows:
        groups[row[key]].append(row)
    return dict(sorted(groups.items()))


def cost_metrics(rows: list[dict]) -> dict:
    """One-off and per-question seconds, KV bytes and compression, per context length."""
    metrics = {"budget_tokens": median(row["budget_tokens"] for row in rows),
               "answer_kv_bytes": median(row["answer_kv_bytes"] for row in rows),
               "one_off_s": median(row["one_off_s"] for row in rows), "answer_s": median(row["answer_s"] for row in rows)}
    if any("artifact_bytes" in row for row in rows):
        metrics["artifact_bytes"] = median(row["artifact_bytes"] for row in rows if "artifact_bytes" in row)
    for length, subset in by(rows, "target_tokens").items():
        documents = by(subset, "id").values()
        firsts = [min(questions, key=lambda row: row["question_index"]) for questions in documents]
        metrics[f"first_answer_s_tokens_{length}"] = median(row["one_off_s"] + row["answer_s"] for row in firsts)
        metrics[f"per_question_s_tokens_{length}"] = median(
            (questions[0]["one_off_s"] + sum(row["answer_s"] for row in questions)) / len(questions)
            for questions in documents)
        metrics[f"compression_ratio_tokens_{length}"] = median(row["context_tokens"] / row["budget_tokens"]
                                                               for row in subset if row["budget_tokens"])
        metrics[f"full_kv_bytes_tokens_{length}"] = median(row["full_kv_bytes"] for row in subset)
        if any("artifact_bytes" in row for row in subset):      # gist/gated's file grows with the document
            metrics[f"artifact_bytes_tokens_{length}"] = median(row["artifact_bytes"] for row in subset
                                                                if "artifact_bytes" in row)
    return metrics


def niah_metrics(rows: list[dict]) -> dict:
    present = [row for row in rows if row["kind"] == "present"]
    absent = [row for row in rows if row["kind"] == "absent"]
    documents = [{"id": key, "all_right": all(row["correct"] for row in questions)}
                 for key, questions in by(rows, "id").items()]
    metrics = {"n_documents": len(documents), **rate(present, "correct", "accuracy"),
               **rate(documents, "all_right", "document_accuracy"),
               **rate(absent, "declined", "absent_declined"), **rate(present, "wrong_number", "wrong_number_rate"),
               **rate(present, "declined", "present_declined")}
    for group, subset in by(present, "group").items():
        metrics.update(rate(subset, "correct", f"accuracy_{group}"))
    for length, subset in by(present, "target_tokens").items():
        metrics.update(rate(subset, "correct", f"accuracy_tokens_{length}"))
    if any("retrieved_needle" in row for row in present):
        metrics.update(rate([row for row in present if "retrieved_needle" in row], "retrieved_needle", "retrieval_recall"))
    return {**metrics, **cost_metrics(rows)}


def ruler_metrics(rows: list[dict]) -> dict:
    """RULER's score (mean per-sample string match, in percent) per task and length, and their mean."""
    metrics = {"n_samples": len(rows)}
    cells = []
    for (task, length), subset in sorted(by([dict(row, cell=(row["task"], row["target_tokens"])) for row in rows],
                                            "cell").items()):
        score = 100 * sum(row["score"] for row in subset) / len(subset)
        metrics[f"score_{task}_tokens_{length}"] = round(score, 2)
        cells.append(score)
    metrics["score_mean"] = round(sum(cells) / len(cells), 2) if cells else float("nan")
    return {**metrics, **cost_metrics(rows)}
