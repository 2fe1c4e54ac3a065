"""Needle-in-a-haystack documents for training, dev and test, exactly reproducible and length-accurate.

A document is a haystack of real prose with one or more *facts* (needles from ``gistkv.data.needles``'
families) and the *questions* asked about it: one per fact it holds, and one about a fact it does
not hold (whose answer is the decline sentence). Training documents hold 1..``max_facts`` facts of
the training families, keyed ones sometimes beside distractors. Dev and test documents hold one fact
each and come in four groups, reported apart:

* ``seen``           a training family, on dev/test passages of the training sources
* ``unseen_text``    a training family, on a source training never reads
* ``unseen_family``  a family of this split only: needle wording and question training never saw
* ``keyed``          a keyed training family beside ``num_distractors`` same-family needles of other names

Every dev/test document also holds ``num_other_facts`` facts of other families, never asked about, so the
key is never the only long number in the text (the haystacks hold none: ``gistkv.data.haystack``).
Splits share no key (hash buckets), name (every third), passage (``passage_cycle``) or family.

    from gistkv.data.niah import NiahParams, generate
    documents = generate(params, lang="en", split="test", tokenizer=tokenizer)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gistkv.errors import GistkvError
from gistkv.data.haystack import DESCRIPTIONS, NOISE, SOURCES, split_pool
from gistkv.data.haystacker import Haystacker
from gistkv.data.needles import SPLITS, Family, decline_answer, draw_key, load_families, split_names
from gistkv.params import require

GROUPS = ("seen", "unseen_text", "unseen_family", "keyed")
EVAL_SPLITS = ("dev", "test")
NEEDLE_SHARE = 3            # a training document's needles take at most a third of its tokens


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
    max_facts: int               # facts per document: uniform in 1..max_facts (distinct families)
    max_distractors: int         # a keyed fact gets 0..max_distractors same-family needles of other names
    absent_fraction: float       # share of documents also asked about a fact they do not hold
    seed: int


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
        for split in SPLITS:
            params, key = getattr(self, split), f"{where}.{split}"
            require(len(params.context_lengths) == len(params.samples_per_length) > 0, f"{key}.samples_per_length",
                    "must give one count per context length.")
            require(min(params.context_lengths) >= 64, f"{key}.context_lengths", "must be at least 64 tokens.")
            require(min(params.samples_per_length) >= 0 and sum(params.samples_per_length) > 0,
                    f"{key}.samples_per_length", "must be >= 0 and not all 0.")
            require(0 <= params.depth_min <= params.depth_max <= 1, f"{key}.depth_min",
                    "need 0 <= depth_min <= depth_max <= 1.")
        require(self.train.max_facts >= 1 and self.train.max_distractors >= 0, f"{where}.train.max_facts",
                "need max_facts >= 1 and max_distractors >= 0.")
        require(0 <= self.train.absent_fraction <= 1, f"{where}.train.absent_fraction", "must be within [0, 1].")
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


def language(params: NiahParams, lang: str) -> LanguageParams:
    if lang not in params.languages:
        raise GistkvError(f"niah.languages: unknown lang '{lang}' (configured: {', '.join(sorted(params.languages))}).")
    return params.languages[lang]


def sentence_pools(params: NiahParams, lang: str, split: str) -> dict[str, tuple[str, ...]]:
    """Haystack sentences per source for ``split``; training never holds a dev or test sentence.

    Two texts can share sentences (pdb's docstrings quote its manual in ``pydoc``), so besides the
    passage split, every sentence of a dev/test pool is dropped from the training pools.
    """
    spec = language(params, lang)

    def pool(source: str, which: str) -> tuple[str, ...]:
        cycle = params.passage_cycle if source in spec.train_sources else params.unseen_cycle
        return split_pool(source, which, cycle, params.block_sentences)

    if split != "train":
        return {source: pool(source, split) for source in spec.train_sources + spec.unseen_sources}
    held_out = {sentence for source in spec.train_sources + spec.unseen_sources if source not in NOISE
                for which in EVAL_SPLITS for sentence in pool(source, which)}
    pools = {}
    for source in spec.train_sources:
        kept = tuple(sentence for sentence in pool(source, "train") if sentence not in held_out)
        if not kept:
            raise GistkvError(f"niah.languages.{lang}.train_sources: '{source}' has no sentence left that dev and "
                              "test do not use.")
        pools[source] = kept
    return pools


class DocumentMaker:
    """Facts, needles and questions of one language and split, drawn from one seeded RNG."""

    def __init__(self, params: NiahParams, lang: str, split: str, tokenizer):
        self.params, self.lang, self.split = params, lang, split
        self.rng = random.Random(f"{getattr(params, split).seed}-{lang}-{split}")
        families = load_families()
        self.train_families = [families[name] for name in params.families["train"]]
        self.split_families = [families[name] for name in params.families[split]]
        self.names = split_names(language(params, lang).names, split)
        self.decline = decline_answer(lang)
        self.used_keys: set[int] = set()
        self.haystacker = Haystacker(tokenizer, params.tolerance)
        self.pools = sentence_pools(params, lang, split)

    def fact(self, family: Family, name: str, depth: float) -> dict:
        key = draw_key(self.rng, tuple(self.params.key_digits), self.split, self.used_keys)
        needle = self.rng.choice(family.needles(self.lang)).format(key=key, name=name)
        return {"family": family.name, "name": name, "key": key, "needle": needle, "depth_bin": round(depth, 4)}

    def question(self, family: Family, name: str, answer: str, kind: str) -> dict:
        wording = self.rng.choice(family.questions(self.lang)).format(name=name)
        return {"kind": kind, "family": family.name, "name": name, "question": wording, "answer": answer}

    def absent_question(self, facts: list[dict], pool: list[Family]) -> dict:
        """A question about a fact the document does not hold: a keyed fact's family with a name not in the
        document, else a family the document does not hold."""
        families = load_families()
        keyed = [fact for fact in facts if families[fact["family"]].keyed and fact.get("target", True)]
        if keyed and self.rng.random() < 0.5:
            family = families[keyed[0]["family"]]
            used = {fact["name"] for fact in facts}
            return self.question(family, self.rng.choice([n for n in self.names if n not in used]), self.decline,
                                 "absent")
        held = {fact["family"] for fact in facts}
        family = self.rng.choice([family for family in pool if family.name not in held])
        return self.question(family, self.rng.choice(self.names) if family.keyed else "", self.decline, "absent")

    def document(self, index: int, length: int, source: str, facts: list[dict], questions: list[dict],
                 group: str) -> dict:
        needles = [(fact["depth_bin"], fact["needle"]) for fact in facts]
        context, starts = self.haystacker.build(self.pools[source], self.rng, length, needles)
        context_tokens = self.haystacker.tokens(context)
        for fact, start in zip(facts, starts):
            fact["depth"] = round(start / context_tokens, 4)
        by_target = {(fact["family"], fact["name"]): fact for fact in facts if fact.pop("target", True)}
        for question in questions:
            fact = by_target.get((question["family"], question["name"])) if question["kind"] == "present" else None
            question.update(depth=fact["depth"] if fact else None, depth_bin=fact["depth_bin"] if fact else None)
        return {"id": f"{self.lang}-{self.split}-{index:05d}", "lang": self.lang, "split": self.split, "group": group,
                "haystack": source, "target_tokens": length, "context_tokens": context_tokens, "context": context,
                "facts": facts, "questions": questions}


def training_document(maker: DocumentMaker, index: int, length: int) -> dict:
    split = maker.params.train
    rng = maker.rng
    families = rng.sample(maker.train_families, k=min(rng.randint(1, split.max_facts), len(maker.train_families)))
    facts, questions, names = [], [], list(maker.names)
    rng.shuffle(names)
    room = length // NEEDLE_SHARE        # needle tokens: the haystack stays most of the context

    def fits(fact: dict) -> bool:
        used = sum(maker.haystacker.tokens(" " + other["needle"]) for other in facts)
        return not facts or used + maker.haystacker.tokens(" " + fact["needle"]) <= room

    for family in families:
        name = names.pop() if family.keyed else ""
        fact = maker.fact(family, name, rng.uniform(split.depth_min, split.depth_max))
        if not fits(fact):
            break
        facts.append(fact)
        questions.append(maker.question(family, name, fact["key"], "present"))
        if family.keyed:
            for _ in range(min(rng.randint(0, split.max_distractors), len(names) - 1)):
                distractor = dict(maker.fact(family, names.pop(), rng.uniform(split.depth_min, split.depth_max)),
                                  target=False)
                if fits(distractor):
                    facts.append(distractor)
    if rng.random() < split.absent_fraction:
        questions.append(maker.absent_question(facts, maker.train_families))
    rng.shuffle(questions)
    source = rng.choice(language(maker.params, maker.lang).train_sources)
    return maker.document(index, length, source, facts, questions, "train")


def eval_document(maker: DocumentMaker, index: int, slot: int, length: int) -> dict:
    """The ``slot``-th document at ``length``: groups, depths and sources on a grid (balanced cells)."""
    split = getattr(maker.params, maker.split)
    spec = language(maker.params, maker.lang)
    rng = maker.rng
    group = GROUPS[slot % len(GROUPS)]
    turn = slot // len(GROUPS)
    depths = [split.depth_min + (split.depth_max - split.depth_min) * i / max(split.num_depths - 1, 1)
              for i in range(max(split.num_depths, 1))]
    depth = depths[turn % len(depths)]
    sources = {"seen": spec.train_sources, "unseen_text": spec.unseen_sources}.get(
        group, spec.train_sources + spec.unseen_sources)
    # Sources turn with every document and shift by one each round of depths, so a length with few documents
    # still mixes its sources and each depth meets each source.
    source = sources[(turn + turn // len(depths)) % len(sources)]
    if group == "unseen_family":
        family = rng.choice(maker.split_families)
    elif group == "keyed":
        family = rng.choice([family for family in maker.train_families if family.keyed])
    else:
        family = rng.choice(maker.train_families)
    names = list(maker.names)
    rng.shuffle(names)
    name = names.pop() if family.keyed else ""
    target = maker.fact(family, name, depth)
    facts = [target]
    if group == "keyed":
        facts += [dict(maker.fact(family, names.pop(), rng.uniform(split.depth_min, split.depth_max)), target=False)
                  for _ in range(split.num_distractors)]
    others = [other for other in maker.train_families + maker.split_families if other.name != family.name]
    for other in rng.sample(others, k=min(split.num_other_facts, len(others))):
        facts.append(dict(maker.fact(other, names.pop() if other.keyed else "", rng.uniform(0.0, 1.0)), target=False))
    questions = [maker.question(family, name, target["key"], "present"),
                 maker.absent_question(facts, maker.train_families + maker.split_families)]
    return maker.document(index, length, source, facts, questions, group)


def generate(params: NiahParams, lang: str, split: str, tokenizer, max_positions: int | None = None) -> list[dict]:
    split_params = getattr(params, split)
    if max_positions is not None and max(split_params.context_lengths) >= max_positions:
        raise GistkvError(f"niah.{split}.context_lengths: {max(split_params.context_lengths)} tokens exceeds the "
                          f"model's {max_positions} positions.")
    maker = DocumentMaker(params, lang, split, tokenizer)
    documents = []
    for length, count in zip(split_params.context_lengths, split_params.samples_per_length):
        for slot in range(count):
            index = len(documents)
            documents.append(training_document(maker, index, length) if split == "train"
                             else eval_document(maker, index, slot, length))
    return documents


def data_card(params: NiahParams, lang: str, counts: dict[str, int], tokenizer_name: str) -> dict:
    spec = language(params, lang)
    return {"lang": lang, "counts": counts, "tokenizer": tokenizer_name,
            "sources": {"train": {source: DESCRIPTIONS[source] for source in spec.train_sources},
                        "unseen (dev/test only)": {source: DESCRIPTIONS[source] for source in spec.unseen_sources}},
            "families": params.families, "groups": list(GROUPS),
            "disjointness": "keys in per-split hash buckets; names every third per split; passages of "
                            f"{params.block_sentences} sentences dealt by {params.passage_cycle} (unseen sources by "
                            f"{params.unseen_cycle}); needle families per split; different seeds",
            "splits": {split: vars(getattr(params, split)) for split in SPLITS}}
