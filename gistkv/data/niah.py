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

    from gistkv.data.niah import generate
    from gistkv.data.niah_params import NiahParams
    documents = generate(params, lang="en", split="test", tokenizer=tokenizer)
"""

from __future__ import annotations

import dataclasses
import random

from gistkv.data.haystack import DESCRIPTIONS, NOISE, split_pool
from gistkv.data.haystacker import Haystacker
from gistkv.data.needles import (SPLITS, Family, decline_answer, draw_key, kind_questions, load_families, recall_questions,
                                 split_names)
from gistkv.data.niah_params import EVAL_SPLITS, LanguageParams, NiahParams
from gistkv.errors import GistkvError

GROUPS = ("seen", "unseen_text", "unseen_family", "keyed")
NEEDLE_SHARE = 3            # a training document's needles take at most a third of its tokens


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

    def __init__(self, params: NiahParams, lang: str, split: str, tokenizer, stream: str = ""):
        self.params, self.lang, self.split, self.stream = params, lang, split, stream
        # a rung of the ladder draws from a stream of its own, so its documents are not the train split's first ones
        self.rng = random.Random(f"{getattr(params, split).seed}-{lang}-{split}{stream}")
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
        return {"id": f"{self.lang}-{self.split}{self.stream}-{index:05d}", "lang": self.lang, "split": self.split, "group": group,
                "haystack": source, "target_tokens": length, "context_tokens": context_tokens, "context": context,
                "facts": facts, "questions": questions}


def training_document(maker: DocumentMaker, index: int, length: int, max_facts: int) -> dict:
    split = maker.params.train
    rng = maker.rng
    families = rng.sample(maker.train_families, k=min(rng.randint(1, max_facts), len(maker.train_families)))
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
    # Drawn only when asked for, so documents made without recall or kind questions stay byte for byte what they were.
    for kind, fraction, wordings in (("recall", split.recall_fraction, recall_questions),
                                     ("kind", split.kind_fraction, kind_questions)):
        if fraction and rng.random() < fraction:
            questions.append({"kind": kind, "family": "", "name": "", "answer": "",
                              "question": rng.choice(wordings(maker.lang))})
    rng.shuffle(questions)
    source = rng.choice(language(maker.params, maker.lang).train_sources)
    document = maker.document(index, length, source, facts, questions, "train")
    in_order = sorted(document["facts"], key=lambda fact: fact["depth"])
    for question in document["questions"]:
        if question["kind"] == "recall":     # every needle, distractors too, as the text orders them
            question["answer"] = " ".join(fact["needle"] for fact in in_order)
        elif question["kind"] == "kind":     # each family once, where it first appears: what is there, not its numbers
            labels = dict.fromkeys(load_families()[fact["family"]].label(maker.lang) for fact in in_order)
            question["answer"] = "; ".join(labels)
    return document


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


def generate(params: NiahParams, lang: str, split: str, tokenizer, max_positions: int | None = None,
             stream: str = "", key: str = "") -> list[dict]:
    """``split``'s documents in ``lang``; ``stream`` and ``key`` name a rung of the ladder (``generate_ladder``)."""
    split_params = getattr(params, split)
    if max_positions is not None and max(split_params.context_lengths) >= max_positions:
        raise GistkvError(f"niah.{key or split}.context_lengths: {max(split_params.context_lengths)} tokens exceeds "
                          f"the model's {max_positions} positions.")
    maker = DocumentMaker(params, lang, split, tokenizer, stream)
    documents = []
    caps = split_params.facts_caps() if split == "train" else None
    for position, (length, count) in enumerate(zip(split_params.context_lengths, split_params.samples_per_length)):
        for slot in range(count):
            index = len(documents)
            documents.append(training_document(maker, index, length, caps[position]) if caps is not None
                             else eval_document(maker, index, slot, length))
    return documents


def generate_ladder(params: NiahParams, lang: str, tokenizer, max_positions: int | None = None) -> list[dict]:
    """The training documents of ``niah.ladder``'s rungs in ``lang``, rung 1 (trained first) first; each document
    says its ``rung``. Training families and passages, as the train split's; none of its documents."""
    documents = []
    for index in range(len(params.ladder)):
        rung = dataclasses.replace(params, train=params.rung(index))
        for document in generate(rung, lang, "train", tokenizer, max_positions, f"-rung{index + 1}",
                                 f"ladder.{index}"):
            documents.append({**document, "rung": index + 1})
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
            "splits": {split: vars(getattr(params, split)) for split in SPLITS},
            **({"ladder": params.ladder} if params.ladder else {})}
