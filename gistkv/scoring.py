"""Scoring: passkey correctness, hallucination, Wilson intervals, and LongBench-style QA F1.

    >>> from gistkv.scoring import score_passkey, wilson_interval
    >>> score_passkey(" 12345.", "12345")
    {'correct': True, 'asserted': '12345', 'hallucinated': False}
    >>> [round(x, 3) for x in wilson_interval(9, 10)]
    [0.596, 0.982]
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter

NUMBER = re.compile(r"\d+")


def score_passkey(prediction: str, key: str) -> dict:
    """Correct when the first number in the answer is the key; a different number is a hallucination."""
    numbers = NUMBER.findall(prediction)
    asserted = numbers[0] if numbers else None
    return {"correct": asserted == key, "asserted": asserted,
            "hallucinated": asserted is not None and asserted != key}


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
