"""How well an answer's confidence (the probability of its least likely token) tells right answers from
wrong ones: the flag threshold is chosen on dev, then measured on test. ``gistkv ask`` flags answers
below such a threshold as guesses.

    from gistkv.reporting.confidence import choose_threshold, flag_stats
    threshold = choose_threshold(dev_rows, "gist")
    flag_stats(test_rows, "gist", threshold)   # {"n": ..., "flagged": ..., "accuracy_kept": ..., ...}
"""

from __future__ import annotations

import math

THRESHOLDS = tuple(round(0.05 * step, 2) for step in range(1, 20))   # 0.05 .. 0.95


def scored(rows: list[dict], method: str) -> list[tuple[float, bool]]:
    """(confidence, correct) of every answer of ``method`` that has a confidence."""
    return [(float(row["min_token_prob"]), bool(row["correct"])) for row in rows
            if row["method"] == method and isinstance(row.get("min_token_prob"), (int, float))
            and not math.isnan(row["min_token_prob"])]     # an empty answer has no token to be sure of


def youden(pairs: list[tuple[float, bool]], threshold: float) -> float | None:
    """Share of wrong answers flagged minus share of right answers flagged (0: the flag is noise; None:
    undefined, when there are no wrong or no right answers)."""
    wrong = [confidence for confidence, correct in pairs if not correct]
    right = [confidence for confidence, correct in pairs if correct]
    if not wrong or not right:
        return None
    return (sum(c < threshold for c in wrong) / len(wrong)) - (sum(c < threshold for c in right) / len(right))


def choose_threshold(rows: list[dict], method: str) -> float | None:
    """The threshold of THRESHOLDS that best separates wrong from right answers (largest Youden J; the lower
    one on ties), or None when there are no answers, or no wrong or no right ones, to separate."""
    pairs = scored(rows, method)
    if not pairs or all(correct for _, correct in pairs) or not any(correct for _, correct in pairs):
        return None
    return max(THRESHOLDS, key=lambda threshold: (youden(pairs, threshold), -threshold))


def flag_stats(rows: list[dict], method: str, threshold: float) -> dict:
    pairs = scored(rows, method)
    kept = [correct for confidence, correct in pairs if confidence >= threshold]
    flagged = [correct for confidence, correct in pairs if confidence < threshold]
    wrong = sum(not correct for _, correct in pairs)
    return {"n": len(pairs), "flagged": len(flagged),
            "accuracy_kept": sum(kept) / len(kept) if kept else None,
            "accuracy_flagged": sum(flagged) / len(flagged) if flagged else None,
            "wrong_flagged": sum(not correct for correct in flagged) / wrong if wrong else None,
            "youden": youden(pairs, threshold)}


def confidence_lines(dev_rows: list[dict], test_rows: list[dict], method: str = "gist") -> list[str]:
    """The report's table: the threshold dev chose, and what it does on dev and on test."""
    threshold = choose_threshold(dev_rows, method)
    if threshold is None:
        return [f"No threshold: dev has no {method} answers with both right and wrong ones to separate."]
    pct = lambda value: "–" if value is None else f"{100 * value:.1f} %"
    stats = {split: flag_stats(rows, method, threshold) for split, rows in (("dev", dev_rows), ("test", test_rows))}
    dev_j = stats["dev"]["youden"]       # flags more wrong than right answers only when positive
    verdict = ("" if dev_j is not None and dev_j > 0 else
               " **No threshold separates them on dev** (best J ≤ 0): the confidence does not tell right from wrong.")
    lines = [f"Threshold chosen on dev: **{threshold:.2f}** (the least likely answer token's probability; best "
             f"Youden J over 0.05–0.95).{verdict}", "",
             "| split | answers | flagged | accuracy, not flagged | accuracy, flagged | wrong answers flagged | J |",
             "|---|---|---|---|---|---|---|"]
    for split, row in stats.items():
        lines.append(f"| {split} | {row['n']} | {row['flagged']} | {pct(row['accuracy_kept'])} | "
                     f"{pct(row['accuracy_flagged'])} | {pct(row['wrong_flagged'])} | "
                     + ("–" if row["youden"] is None else f"{row['youden']:.2f}") + " |")
    return lines
