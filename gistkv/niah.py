"""Needle-in-a-haystack sets, exactly reproducible and length-accurate in the model's tokens.

Two variants per language:

* ``passkey`` — one needle, "The pass key is 12345. Remember it. …"
* ``keyed``   — RULER-style "The special magic number for <name> is 12345." plus
  ``num_distractors`` needles for other names, so retrieval must pick the right one.

Train and eval never share a key (keys are bucketed by a hash), a name (even/odd halves of
the name list) or a haystack passage (``haystack.split_pool``), and they use different seeds.

    from gistkv.niah import NiahParams, generate
    records = generate(params, lang="en", split="eval", tokenizer=tokenizer)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from gistkv.errors import GistkvError
from gistkv.haystack import DESCRIPTIONS, NOISE, SOURCES, split_pool
from gistkv.params import require
from gistkv.prompt import encode

VARIANTS = ("passkey", "keyed")


@dataclass
class Template:
    needle: str          # {key}, and {name} for the keyed variant
    question: str
    answer_prefix: str


@dataclass
class LanguageParams:
    train_sources: list[str]
    eval_sources: list[str]
    passkey: Template
    keyed: Template
    names: list[str]     # keyed-variant names; even positions for train, odd for eval


@dataclass
class SplitParams:
    samples: int
    context_lengths: list[int]   # target context length in the base model's tokens
    depth_min: float             # needle depth range, fraction of the context
    depth_max: float
    num_depths: int              # eval: grid of depths; train: 0 = uniform random in the range
    keyed_fraction: float        # share of samples using the keyed variant
    num_distractors: int         # extra needles with other names (keyed variant)
    seed: int


@dataclass
class NiahParams:
    key_digits: int
    tolerance: float             # allowed relative error of context_tokens vs target
    block_sentences: int         # passage size for the train/eval split of a shared source
    eval_block_every: int
    splits: dict[str, SplitParams]
    languages: dict[str, LanguageParams]

    def validate(self, where: str) -> None:
        require(2 <= self.key_digits <= 9, f"{where}.key_digits", "must be between 2 and 9.")
        require(set(self.splits) == {"train", "eval"}, f"{where}.splits", "must have exactly 'train' and 'eval'.")
        for name, split in self.splits.items():
            key = f"{where}.splits.{name}"
            require(split.samples > 0, f"{key}.samples", f"must be positive, got {split.samples}.")
            require(bool(split.context_lengths) and min(split.context_lengths) >= 32, f"{key}.context_lengths",
                    "must list lengths of at least 32 tokens.")
            require(0 <= split.depth_min <= split.depth_max <= 1, f"{key}.depth_min",
                    "need 0 <= depth_min <= depth_max <= 1.")
            require(0 <= split.keyed_fraction <= 1, f"{key}.keyed_fraction", "must be within [0, 1].")
            require(split.num_distractors >= 0, f"{key}.num_distractors", "must be >= 0.")
        for lang, spec in self.languages.items():
            key = f"{where}.languages.{lang}"
            for variant in VARIANTS:
                template = getattr(spec, variant)
                for part in ("needle", "question", "answer_prefix"):
                    require(bool(getattr(template, part).strip()), f"{key}.{variant}.{part}", "must not be empty.")
                require("{key}" in template.needle, f"{key}.{variant}.needle", "must contain {key}.")
            require("{name}" in spec.keyed.needle and "{name}" in spec.keyed.question, f"{key}.keyed",
                    "needle and question must contain {name}.")
            require(len(spec.names) >= 4, f"{key}.names", "needs at least 4 names (half train, half eval).")
            for source in spec.train_sources + spec.eval_sources:
                require(source in SOURCES, f"{key}", f"unknown haystack source '{source}' (known: {', '.join(SOURCES)}).")


def language(params: NiahParams, lang: str) -> LanguageParams:
    if lang not in params.languages:
        raise GistkvError(f"niah.languages: unknown lang '{lang}' (configured: {', '.join(sorted(params.languages))}).")
    return params.languages[lang]


def is_eval_key(key: int) -> bool:
    """A fixed hash bucket (about 1 key in 5) reserved for evaluation."""
    return (key * 2654435761 >> 7) % 5 == 0


def draw_key(rng: random.Random, digits: int, split: str, used: set[int]) -> int:
    while True:
        key = rng.randrange(10 ** (digits - 1), 10 ** digits)
        if is_eval_key(key) == (split == "eval") and key not in used:
            used.add(key)
            return key


def split_names(names: list[str], split: str) -> list[str]:
    return names[0::2] if split == "train" else names[1::2]


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
                              "niah.splits.<split>.context_lengths or lower num_distractors.")
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


def sentence_pools(params: NiahParams, lang: str, split: str) -> dict[str, tuple[str, ...]]:
    """Haystack sentences per source of ``lang``'s ``split``; training never holds an eval sentence.

    Two texts can share sentences (pdb's docstrings quote its manual in ``pydoc``), so besides the
    passage split of a shared source, every sentence of an eval pool is dropped from the training pools.
    """
    spec = language(params, lang)
    shared = set(spec.train_sources) & set(spec.eval_sources)

    def pool(source: str, which: str) -> tuple[str, ...]:
        return split_pool(source, which, source in shared, params.block_sentences, params.eval_block_every)

    if split == "eval":
        return {source: pool(source, "eval") for source in spec.eval_sources}
    held_out = {sentence for source in spec.eval_sources if source not in NOISE for sentence in pool(source, "eval")}
    pools = {}
    for source in spec.train_sources:
        kept = tuple(sentence for sentence in pool(source, "train") if sentence not in held_out)
        if not kept:
            raise GistkvError(f"niah.languages.{lang}.train_sources: '{source}' has no sentence left that the "
                              "eval split does not use.")
        pools[source] = kept
    return pools


def generate(params: NiahParams, lang: str, split: str, tokenizer, max_positions: int | None = None) -> list[dict]:
    spec = language(params, lang)
    split_params = params.splits[split]
    if max_positions is not None and max(split_params.context_lengths) >= max_positions:
        raise GistkvError(f"niah.splits.{split}.context_lengths: {max(split_params.context_lengths)} tokens exceeds "
                          f"the model's {max_positions} positions.")
    sources = spec.train_sources if split == "train" else spec.eval_sources
    pools = sentence_pools(params, lang, split)
    rng = random.Random(f"{split_params.seed}-{lang}-{split}")
    names = split_names(spec.names, split)
    haystacker = Haystacker(tokenizer, params.tolerance)
    lengths = split_params.context_lengths
    depths = ([split_params.depth_min + (split_params.depth_max - split_params.depth_min) * i
               / max(split_params.num_depths - 1, 1) for i in range(split_params.num_depths)]
              if split_params.num_depths > 0 else [])
    used_keys: set[int] = set()
    records = []
    for index in range(split_params.samples):
        # Eval: a grid over length x depth x source (for heatmaps); train: random draws.
        if depths:
            length = lengths[index % len(lengths)]
            depth = depths[(index // len(lengths)) % len(depths)]
            source = sources[(index // (len(lengths) * len(depths))) % len(sources)]
        else:
            length = rng.choice(lengths)
            depth = rng.uniform(split_params.depth_min, split_params.depth_max)
            source = rng.choice(sources)
        keyed = rng.random() < split_params.keyed_fraction
        key = draw_key(rng, params.key_digits, split, used_keys)
        record = {"id": f"{lang}-{split}-{index:05d}", "lang": lang, "split": split, "haystack": source,
                  "target_tokens": length, "variant": "keyed" if keyed else "passkey", "answer": str(key),
                  "key": str(key)}
        if keyed:
            chosen = rng.sample(names, k=min(len(names), 1 + split_params.num_distractors))
            name = chosen[0]
            template = spec.keyed
            needles = [(depth, template.needle.format(name=name, key=key))]
            distractors = []
            for other in chosen[1:]:
                other_key = draw_key(rng, params.key_digits, split, used_keys)
                distractors.append({"name": other, "key": str(other_key)})
                needles.append((rng.uniform(split_params.depth_min, split_params.depth_max),
                                template.needle.format(name=other, key=other_key)))
            record.update(name=name, distractors=distractors)
            question = template.question.format(name=name)
            prefix = template.answer_prefix.format(name=name)
        else:
            template = spec.passkey
            needles = [(depth, template.needle.format(key=key))]
            record.update(name="", distractors=[])
            question, prefix = template.question, template.answer_prefix
        context, starts = haystacker.build(pools[source], rng, length, needles)
        context_tokens = haystacker.tokens(context)
        record.update(context=context, needle=needles[0][1], question=question, answer_prefix=prefix,
                      context_tokens=context_tokens, depth=round(starts[0] / context_tokens, 4),
                      depth_bin=round(depth, 4))
        records.append(record)
    return records


def data_card(params: NiahParams, lang: str, counts: dict[str, int], tokenizer_name: str) -> dict:
    spec = language(params, lang)
    return {"lang": lang, "counts": counts, "tokenizer": tokenizer_name,
            "sources": {split: {source: DESCRIPTIONS[source] for source in getattr(spec, f"{split}_sources")}
                        for split in ("train", "eval")},
            "disjointness": "different seeds; eval keys in a reserved hash bucket; names split even/odd; shared "
                            f"sources cut into {params.block_sentences}-sentence passages, every "
                            f"{params.eval_block_every}th to eval",
            "splits": {name: vars(split) for name, split in params.splits.items()}}
