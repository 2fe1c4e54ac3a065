"""A passage index stored beside the gist: does the document say anything about what a question asks?

The gist tokens store the digits of a document's most salient number, not which kind of fact it is, and
the reader never compares the two (docs/experiments.md): asked about a fact the document lacks, the gist
answers with the number it holds. So ``gistkv ask`` checks first, outside the gist, whether any passage
of the document is about the question: the document's sentences (long ones as overlapping windows of
words) are embedded once at compress time with the multilingual Universal Sentence Encoder (English and
Korean), stored as int8 vectors in the artifact, and a question whose best passage is less similar than
a threshold chosen on the dev split (``evaluate.gate.min_similarity``; docs/probes/presence_gate.py) is
declined without asking the gist. It checks what the document is about, not whether the gist holds the
answer: a question about a fact of the right kind under another name still passes.

    embed = load_embedder()
    index = PresenceIndex.build(open("doc.txt").read(), embed)
    index.similarity("What is the pass key?", embed)       # cosine of the best passage, in [-1, 1]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from gistkv.errors import GistkvError
from gistkv.evaluation.retrieval import USE_NAME, load_embedding_function

EMBEDDER = "use"                  # gistkv.evaluation.retrieval: multilingual USE v3, reads Korean
WORD = re.compile(r"\S+")
SENTENCE_STOPS = ".!?"            # a word ending in one ends its sentence
LONG_SENTENCE_WORDS = 16          # longer sentences are windowed: a needle inside a long run of text (Korean
WINDOW_WORDS = 12                 # bills have few full stops) would otherwise be one small part of a big passage
TENSORS = ("presence.vectors", "presence.scales")
PLACES = "presence.token_ends"    # optional: the context token where each passage ends (for a routed read)


def passage_spans(text: str) -> list[tuple[str, int]]:
    """(passage, the character offset just past its end) for every passage: sentences, with each sentence of more
    than 16 words split into 12-word windows that overlap by half.

    >>> passage_spans("A short one. " + " ".join(str(i) for i in range(20)) + ".")[:2]
    [('A short one.', 12), ('0 1 2 3 4 5 6 7 8 9 10 11', 38)]
    """
    found, sentence = [], []
    words = list(WORD.finditer(text))
    for position, word in enumerate(words):
        sentence.append(word)
        if word.group()[-1] not in SENTENCE_STOPS and position + 1 < len(words):
            continue
        if len(sentence) <= LONG_SENTENCE_WORDS:
            found.append(window(sentence))
        else:
            step = WINDOW_WORDS // 2
            found += [window(sentence[start:start + WINDOW_WORDS]) for start in range(0, len(sentence) - step, step)]
        sentence = []
    return found


def window(words: list[re.Match]) -> tuple[str, int]:
    return " ".join(word.group() for word in words), words[-1].end()


def passages(text: str) -> list[str]:
    """The passages of ``passage_spans``, without their places."""
    return [passage for passage, _ in passage_spans(text)]


def unit_rows(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)      # (n, dim)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@dataclass
class PresenceIndex:
    """One int8 row per passage (``vectors``, (n, dim)) with its float32 scale (``scales``, (n,)): a quarter of
    float32's bytes; cosines move by about 0.005, far below the gap between present and absent questions."""

    vectors: torch.Tensor
    scales: torch.Tensor
    token_ends: torch.Tensor | None = None      # (n,) int32, where ``build`` was given ``locate``

    @classmethod
    def build(cls, text: str, embed, locate=None) -> "PresenceIndex":
        """``locate`` (character offsets -> context token indices: ``gistkv.core.routing.token_of_chars``) adds
        where each passage ends, so a ``gist_read: routed`` compressor can read the group that holds it."""
        spans: dict[str, int] = {}
        for passage, end in passage_spans(text):    # a repeated passage adds bytes, never a better match: one row,
            spans.setdefault(passage, end)          # at its first place
        found = list(spans)
        if not found:
            raise GistkvError("the document has no words: there is nothing to index.")
        rows = unit_rows(embed(found))
        scales = np.maximum(np.abs(rows).max(axis=1), 1e-12) / 127.0
        quantized = np.round(rows / scales[:, None]).astype(np.int8)
        ends = None if locate is None else torch.tensor(locate([spans[passage] - 1 for passage in found]),
                                                       dtype=torch.int32)
        return cls(torch.from_numpy(quantized), torch.from_numpy(scales.astype(np.float32)), ends)

    def best(self, question: str, embed) -> tuple[float, int]:
        """(the cosine between the question and its most similar passage, that passage's row)."""
        passages_unit = unit_rows(self.vectors.numpy().astype(np.float32) * self.scales.numpy()[:, None])
        cosines = passages_unit @ unit_rows(embed([question]))[0]
        return float(cosines.max()), int(cosines.argmax())

    def similarity(self, question: str, embed) -> float:
        """The cosine between the question and its most similar passage."""
        return self.best(question, embed)[0]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.vectors, self.scales, self.token_ends) if t is not None)

    def attach(self, gist_kv) -> None:
        """Store the index in a ``GistKV`` (its ``extra`` tensors, and which embedder made it): saved with the gist."""
        gist_kv.extra.update(zip(TENSORS, (self.vectors, self.scales)))
        if self.token_ends is not None:
            gist_kv.extra[PLACES] = self.token_ends
        gist_kv.metadata.update(presence_embedder=USE_NAME, presence_dim=str(self.vectors.shape[1]))

    @classmethod
    def of(cls, gist_kv, path="the artifact") -> "PresenceIndex | None":
        """The index stored with a gist, or None for a gist compressed without one."""
        tensors = gist_kv.extra
        present = [name for name in TENSORS if name in tensors]
        if not present:
            return None
        if len(present) < len(TENSORS) or tensors[TENSORS[0]].shape[0] != tensors[TENSORS[1]].shape[0]:
            raise GistkvError(f"{path}: its passage index is damaged (presence.vectors and presence.scales must "
                              "both be there, one scale per row); compress the document again.")
        made_by = (gist_kv.metadata.get("presence_embedder"), gist_kv.metadata.get("presence_dim"))
        if made_by != (USE_NAME, str(tensors[TENSORS[0]].shape[1])):
            raise GistkvError(f"{path}: its passage index was made by embedder {made_by[0]!r} ({made_by[1]} dimensions), "
                              f"not {USE_NAME!r}; compress the document again.")
        ends = tensors.get(PLACES)
        if ends is not None and (tuple(ends.shape) != (tensors[TENSORS[0]].shape[0],) or bool((ends < 0).any())):
            raise GistkvError(f"{path}: its passage index is damaged ({PLACES} must hold one place per passage); "
                              "compress the document again.")
        return cls(tensors[TENSORS[0]], tensors[TENSORS[1]], ends)


def load_embedder(cache_dir="models/embedder", threads: int = 2):
    return load_embedding_function(EMBEDDER, cache_dir, threads)


def question_language(question: str) -> str:
    """ko when the question has Hangul, else en: the language of the decline sentence."""
    return "ko" if re.search(r"[\uac00-\ud7a3]", question) else "en"


def passes(index: PresenceIndex, question: str, embed, min_similarity: float) -> tuple[float, bool]:
    """(the best passage's similarity, whether it reaches ``min_similarity``): below it, decline."""
    similarity = index.similarity(question, embed)
    return similarity, similarity >= min_similarity
