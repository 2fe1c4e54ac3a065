"""Contexts of an exact length in the model's tokens, built from a sentence pool, with needles at sentence boundaries.

    haystacker = Haystacker(tokenizer, tolerance=0.01)
    context, starts = haystacker.build(pool, random.Random(0), 1024, [(0.5, "The pass key is 4821.")])
"""

from __future__ import annotations

import random

from gistkv.core.prompt import encode
from gistkv.errors import GistkvError


class Haystacker:
    """Builds contexts of an exact token length from a sentence pool, with needles at sentence boundaries."""

    def __init__(self, tokenizer, tolerance: float):
        self.tokenizer = tokenizer
        self.tolerance = tolerance
        self._lengths: dict[str, int] = {}

    def tokens(self, text: str) -> int:
        return len(encode(self.tokenizer, text))

    def sentence_tokens(self, sentence: str) -> int:
        if sentence not in self._lengths:
            self._lengths[sentence] = self.tokens(" " + sentence)
        return self._lengths[sentence]

    def build(self, pool: tuple[str, ...], rng: random.Random, target: int,
              needles: list[tuple[float, str]]) -> tuple[str, list[int]]:
        """Return (context, start token of each needle). ``needles`` are (depth, text) pairs.

        The haystack is a run of consecutive sentences from a random point of ``pool``; its
        character length is found by bisection so the whole context lands on ``target`` tokens.
        Needles go between sentences; only the haystack's last sentence may be cut.
        """
        start = rng.randrange(len(pool))
        sentences, used = [], 0
        while used < target + 64:
            sentence = pool[(start + len(sentences)) % len(pool)]
            used += self.sentence_tokens(sentence)
            sentences.append(sentence)
            if len(sentences) > 100_000:
                raise GistkvError("niah: haystack pool too small to reach the target length.")
        budget = target - sum(self.tokens(" " + text) for _, text in needles)
        if budget < target // 4:
            raise GistkvError(f"niah: the needles take {target - budget} of the {target} target tokens; raise "
                              "niah.<split>.context_lengths or lower the distractors.")
        best: tuple[int, str, list[int]] | None = None
        for _ in range(4):
            context, starts = self._cut(sentences, needles, budget)
            count = self.tokens(context)
            if best is None or abs(count - target) < abs(best[0] - target):
                best = (count, context, starts)
            if count == target:
                break
            budget += target - count
        # Multi-token characters (Hangul) can make the budget jump past the target: search around it.
        for delta in (1, -1, 2, -2, 3, -3, 4, -4):
            if best[0] == target:
                break
            context, starts = self._cut(sentences, needles, budget + delta)
            count = self.tokens(context)
            if abs(count - target) < abs(best[0] - target):
                best = (count, context, starts)
        count, context, starts = best
        # One token of slack: a Hangul syllable can be 2-3 byte tokens, so short targets cannot always land exactly.
        if abs(count - target) > max(1.0, target * self.tolerance):
            raise GistkvError(f"niah: could not hit {target} tokens within ±{self.tolerance:.0%} (got {count}).")
        return context, starts

    def _cut(self, sentences: list[str], needles: list[tuple[float, str]], budget: int) -> tuple[str, list[int]]:
        haystack = " ".join(sentences)
        low, high = 0, len(haystack)
        while low < high:                      # largest prefix with at most `budget` tokens
            middle = (low + high + 1) // 2
            if self.tokens(haystack[:middle]) <= budget:
                low = middle
            else:
                high = middle - 1
        prefix = haystack[:low].rstrip()
        units, offset = [], 0
        for sentence in sentences:
            if offset >= len(prefix):
                break
            units.append(prefix[offset:offset + len(sentence)])
            offset += len(sentence) + 1
        complete = sum(1 for unit, sentence in zip(units, sentences) if unit == sentence)
        return self._assemble(units, needles, complete)

    def _assemble(self, units: list[str], needles: list[tuple[float, str]], complete: int) -> tuple[str, list[int]]:
        slots = [min(round(depth * complete), complete) for depth, _ in needles]
        pieces: list[str] = []
        starts = [0] * len(needles)
        for position in range(len(units) + 1):
            for index, slot in enumerate(slots):
                if slot == position:
                    starts[index] = self.tokens(" ".join(pieces)) if pieces else 0
                    pieces.append(needles[index][1])
            if position < len(units):
                pieces.append(units[position])
        return " ".join(pieces), starts
