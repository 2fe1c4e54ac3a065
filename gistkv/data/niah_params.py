"""The ``niah`` section of params.yaml: needle families per split, each split's lengths and counts, the sources
per language; checked before any document is made.

    from gistkv.params import load_section
    from gistkv.data.niah_params import NiahParams
    niah = load_section("params.yaml", "niah", NiahParams)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gistkv.data.haystack import SOURCES
from gistkv.data.needles import SPLITS, load_families
from gistkv.params import from_mapping, require

EVAL_SPLITS = ("dev", "test")


@dataclass
class LanguageParams:
    train_sources: list[str]     # prose training reads; their dev/test passages are eval-only
    unseen_sources: list[str]    # prose training never reads (dev and test passages)
    names: list[str]             # whom keyed facts belong to; every third name per split


@dataclass
class TrainSplitParams:
    context_lengths: list[int]   # target context lengths in the base model's tokens ...
    samples_per_length: list[int]  # ... and documents per language at each
    depth_min: float
    depth_max: float
    max_facts: int | list[int]   # facts per document: uniform in 1..max_facts (distinct families); a list gives a cap
                                 # per context length (a curriculum: the short documents read first hold fewer)
    max_distractors: int         # a keyed fact gets 0..max_distractors same-family needles of other names
    absent_fraction: float       # share of documents also asked about a fact they do not hold
    recall_fraction: float       # share of documents also asked to recite every fact (the needles in text order)
    kind_fraction: float         # share also asked what kind of facts they give (the families' labels, no numbers)
    seed: int

    def facts_caps(self) -> list[int]:
        """The most facts a training document holds, one cap per entry of ``context_lengths`` (by position, so a
        length listed twice may have two caps)."""
        return self.max_facts if isinstance(self.max_facts, list) else [self.max_facts] * len(self.context_lengths)


@dataclass
class EvalSplitParams:
    context_lengths: list[int]
    samples_per_length: list[int]
    depth_min: float
    depth_max: float
    num_depths: int              # grid of needle depths (the depth x length heatmaps)
    num_distractors: int         # the keyed group's distractors (same family, other names)
    num_other_facts: int         # facts of other families beside the asked one: the key is not the only number
    seed: int


@dataclass
class NiahParams:
    key_digits: list[int]        # [min, max] digits of a key, drawn per needle
    tolerance: float             # allowed relative error of context_tokens vs the target
    block_sentences: int         # passage size for dealing a source to the splits
    passage_cycle: list[str]     # how a training source's passages are dealt, in turn
    unseen_cycle: list[str]      # how an unseen source's passages are dealt (dev/test only)
    families: dict[str, list[str]]   # split -> needle families (gistkv/data/niah_families.yaml)
    train: TrainSplitParams
    dev: EvalSplitParams
    test: EvalSplitParams
    languages: dict[str, LanguageParams]
    ladder: list[dict[str, Any]] = field(default_factory=list)   # easier training sets read before ``train``, rung 1
                                 # first: each the ``train`` keys it changes (gistkv.training.ladder; data/niah/<lang>/
                                 # ladder.jsonl); train.ladder gives each rung's steps

    def rung(self, index: int) -> TrainSplitParams:
        """Rung ``index`` (0 = the first read): ``train`` with the rung's keys changed, checked as ``train`` is."""
        return from_mapping(TrainSplitParams, {**dataclasses.asdict(self.train), **self.ladder[index]},
                            f"niah.ladder.{index}")

    def validate(self, where: str) -> None:
        require(len(self.key_digits) == 2 and 2 <= self.key_digits[0] <= self.key_digits[1] <= 12,
                f"{where}.key_digits", f"must be [min, max] with 2 <= min <= max <= 12, got {self.key_digits}.")
        require(set(self.passage_cycle) <= set(SPLITS) and "train" in self.passage_cycle, f"{where}.passage_cycle",
                f"must list splits of {', '.join(SPLITS)}, train among them.")
        require(set(self.unseen_cycle) == set(EVAL_SPLITS), f"{where}.unseen_cycle", "must list dev and test.")
        require(set(self.families) == set(SPLITS), f"{where}.families", f"must name families for {', '.join(SPLITS)}.")
        known = load_families()
        seen: dict[str, str] = {}
        for split, names in self.families.items():
            require(bool(names), f"{where}.families.{split}", "must name at least one family.")
            for name in names:
                require(name in known, f"{where}.families.{split}", f"unknown family '{name}' (known: {', '.join(known)}).")
                require(name not in seen, f"{where}.families.{split}",
                        f"family '{name}' is also in {seen.get(name)}: a family belongs to one split.")
                seen[name] = split
        require(any(known[name].keyed for name in self.families["train"]), f"{where}.families.train",
                "needs a keyed family (the keyed group asks one).")
        for split in EVAL_SPLITS:
            check_lengths(getattr(self, split), f"{where}.{split}")
        check_training_split(self.train, f"{where}.train")
        for index in range(len(self.ladder)):
            rung = self.rung(index)
            check_training_split(rung, f"{where}.ladder.{index}")
            require(rung.max_distractors <= self.train.max_distractors, f"{where}.ladder.{index}.max_distractors",
                    f"must be at most train.max_distractors={self.train.max_distractors} (the names are sized for it).")
        for lang, spec in self.languages.items():
            key = f"{where}.languages.{lang}"
            for source in spec.train_sources + spec.unseen_sources:
                require(source in SOURCES, key, f"unknown haystack source '{source}' (known: {', '.join(SOURCES)}).")
            require(bool(spec.train_sources) and bool(spec.unseen_sources), key,
                    "needs train_sources and unseen_sources.")
            wanted = 1 + max(self.dev.num_distractors + self.dev.num_other_facts,
                             self.test.num_distractors + self.test.num_other_facts, self.train.max_distractors) + 1
            require(len(spec.names) >= 3 * wanted, f"{key}.names",
                    f"needs at least {3 * wanted} names (a third per split, enough for distractors and absent ones).")


def check_lengths(params: TrainSplitParams | EvalSplitParams, key: str) -> None:
    """A split's lengths, counts and depths (every split, and every rung of the ladder)."""
    require(len(params.context_lengths) == len(params.samples_per_length) > 0, f"{key}.samples_per_length",
            "must give one count per context length.")
    require(min(params.context_lengths) >= 64, f"{key}.context_lengths", "must be at least 64 tokens.")
    require(min(params.samples_per_length) >= 0 and sum(params.samples_per_length) > 0,
            f"{key}.samples_per_length", "must be >= 0 and not all 0.")
    require(0 <= params.depth_min <= params.depth_max <= 1, f"{key}.depth_min", "need 0 <= depth_min <= depth_max <= 1.")


def check_training_split(params: TrainSplitParams, key: str) -> None:
    """``niah.train`` or a rung of ``niah.ladder``: its lengths, and the facts each document holds."""
    check_lengths(params, key)
    caps = params.facts_caps()
    require(len(caps) == len(params.context_lengths), f"{key}.max_facts",
            "a list needs one cap per train context length.")
    require(min(caps) >= 1 and params.max_distractors >= 0, f"{key}.max_facts",
            "need max_facts >= 1 and max_distractors >= 0.")
    require(0 <= params.absent_fraction <= 1, f"{key}.absent_fraction", "must be within [0, 1].")
    require(0 <= params.recall_fraction <= 1, f"{key}.recall_fraction", "must be within [0, 1].")
    require(0 <= params.kind_fraction <= 1, f"{key}.kind_fraction", "must be within [0, 1].")
