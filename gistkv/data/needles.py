"""Needle families: kinds of fact, their wordings and questions, read from ``niah_families.yaml``.

A family belongs to one split (``niah.families`` in params.yaml), so dev and test ask about facts
worded in ways training never saw. Keys and names are split too: a key's hash bucket and a name's
position in the language's list decide which split may use it.

    >>> from gistkv.data.needles import load_families
    >>> load_families()["passkey"].questions("en")[0]
    'What is the pass key?'
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from gistkv.errors import GistkvError

FAMILIES_FILE = Path(__file__).with_name("niah_families.yaml")
SPLITS = ("train", "dev", "test")
LADDER = "ladder"     # <lang>/ladder.jsonl beside the splits' files: the rungs of niah.ladder (gistkv.training.ladder)


@dataclass(frozen=True)
class Family:
    name: str
    wordings: dict    # lang -> {"needles": [...], "questions": [...]}

    @property
    def keyed(self) -> bool:
        """A keyed family names whom the number belongs to ({name} in its needles and questions)."""
        first = next(iter(self.wordings.values()))
        return "{name}" in first["needles"][0]

    def needles(self, lang: str) -> list[str]:
        return self._lang(lang)["needles"]

    def questions(self, lang: str) -> list[str]:
        return self._lang(lang)["questions"]

    def label(self, lang: str) -> str:
        """The kind of fact, without its number ("a pass key"): the answer to a kind question."""
        return self._lang(lang)["label"]

    def _lang(self, lang: str) -> dict:
        if lang not in self.wordings:
            raise GistkvError(f"{FAMILIES_FILE.name}: family '{self.name}' has no '{lang}' wordings.")
        return self.wordings[lang]


@lru_cache(maxsize=None)
def _read(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_families(path: Path = FAMILIES_FILE) -> dict[str, Family]:
    families = {}
    for name, wordings in _read(path)["families"].items():
        family = Family(name, wordings)
        for lang, spec in wordings.items():
            if not isinstance(spec.get("label"), str) or not spec["label"].strip():
                raise GistkvError(f"{path.name}: family '{name}' ({lang}) needs a label: the kind of fact, without "
                                  "its number (label: \"a pass key\").")
            for needle in spec["needles"]:
                if "{key}" not in needle or ("{name}" in needle) != family.keyed:
                    raise GistkvError(f"{path.name}: family '{name}' ({lang}) needle {needle!r} must hold {{key}}, "
                                      "and {name} exactly when the family's first needle does.")
            for question in spec["questions"]:
                if ("{name}" in question) != family.keyed:
                    raise GistkvError(f"{path.name}: family '{name}' ({lang}) question {question!r}: {{name}} must "
                                      "appear exactly in keyed families.")
        families[name] = family
    return families


def _per_language(section: str, lang: str, what: str, path: Path):
    entries = _read(path)[section]
    if lang not in entries:
        raise GistkvError(f"{path.name}: no {what} for language '{lang}'.")
    return entries[lang]


def decline_answer(lang: str, path: Path = FAMILIES_FILE) -> str:
    """What a reader should answer when the document does not hold the asked fact."""
    return _per_language("decline", lang, "decline answer", path)


def recall_questions(lang: str, path: Path = FAMILIES_FILE) -> list[str]:
    """Wordings of the training-only request to recite every fact of a document (``niah.train.recall_fraction``)."""
    return _per_language("recall", lang, "recall questions", path)


def kind_questions(lang: str, path: Path = FAMILIES_FILE) -> list[str]:
    """Wordings of the training-only question of what kind of facts a document gives (``niah.train.kind_fraction``)."""
    return _per_language("kind", lang, "kind questions", path)


def key_split(key: int) -> str:
    """The split a key belongs to: a fixed hash bucket, 1 in 5 to test and 1 in 5 to dev."""
    bucket = (key * 2654435761 >> 7) % 5
    return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


def draw_key(rng: random.Random, digits: tuple[int, int], split: str, used: set[int]) -> str:
    """A key of ``digits[0]..digits[1]`` digits from ``split``'s bucket, never used before in this set."""
    while True:
        length = rng.randint(digits[0], digits[1])
        key = rng.randrange(10 ** (length - 1), 10 ** length)
        if key_split(key) == split and key not in used:
            used.add(key)
            return str(key)


def split_names(names: list[str], split: str) -> list[str]:
    """Every third name per split, so no name is asked about in two splits."""
    return names[SPLITS.index(split)::3]
