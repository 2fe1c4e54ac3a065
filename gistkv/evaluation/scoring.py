"""Scoring: needle answers, declines, RULER's string match, Wilson intervals, McNemar, LongBench QA F1.

    >>> from gistkv.evaluation.scoring import score_number, wilson_interval
    >>> score_number(" 12345.", "12345")
    {'asserted': '12345', 'correct': True, 'declined': False, 'wrong_number': False}
    >>> score_number(" The document does not say.", None)["declined"]
    True
    >>> [round(x, 3) for x in wilson_interval(9, 10)]
    [0.596, 0.982]
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter

NUMBER = re.compile(r"\d+")


def score_number(prediction: str, key: str | None) -> dict:
    """A needle answer: correct when its first number is the key; no number at all is a decline.

    ``key`` None: the document does not hold the fact, and only a decline is right (a number there is
    a hallucination: ``wrong_number`` on an absent question).
    """
    numbers = NUMBER.findall(prediction)
    asserted = numbers[0] if numbers else None
    correct = asserted == key if key is not None else asserted is None
    return {"asserted": asserted, "correct": correct, "declined": asserted is None,
            "wrong_number": asserted is not None and asserted != key}


def ruler_string_match(prediction: str, references: list[str], metric: str) -> float:
    """RULER's per-sample score (its ``eval/synthetic/constants.py``), in [0, 1] instead of percent:
    ``all`` = share of references found in the prediction (niah, vt, cwe, fwe), ``part`` = 1 if any is (qa).
    Matching is case-insensitive substring search, after RULER's post-processing (strip, control chars to newlines).
    """
    prediction = re.sub(r"[\x00-\x1f]", "\n", prediction.strip()).strip().lower()
    found = [1.0 if reference.lower() in prediction else 0.0 for reference in references]
    if metric == "all":
        return sum(found) / len(found)
    if metric == "part":
        return max(found)
    raise ValueError(f"RULER metric {metric!r}: expected 'all' or 'part'.")


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs of a paired comparison.

    >>> round(mcnemar_exact(10, 2), 4)
    0.0386
    """
    discordant = only_first + only_second
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(only_first, only_second) + 1)) / 2 ** discordant
    return min(1.0, 2 * tail)


def wilson_interval(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    if total == 0:
        return (float("nan"), float("nan"))
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def normalize_answer(text: str) -> str:
    """LongBench/SQuAD normalization: lower, drop punctuation and English articles, fold spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation) and ch not in "，。！？、；：“”‘’（）《》")
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def split_words(text: str) -> list[str]:
    """Words, except in Chinese text, which LongBench scores per character (it has no spaces)."""
    if re.search(r"[\u4e00-\u9fff]", text):
        return [ch for ch in text if not ch.isspace()]
    return text.split()


def tokens_for_f1(text: str) -> list[str]:
    return split_words(normalize_answer(text))


def qa_f1(prediction: str, ground_truth: str) -> float:
    predicted, truth = tokens_for_f1(prediction), tokens_for_f1(ground_truth)
    common = Counter(predicted) & Counter(truth)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(truth)
    return 2 * precision * recall / (precision + recall)
