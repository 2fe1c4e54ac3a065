"""The ways of answering questions about a long document, named by what they read and who reads it.

    full/base      the base model reads the whole document
    full/tuned     the task-tuned reader: the plain-LoRA control, trained on the same documents and
                   questions without gist tokens (the context read by the base weights, as in training)
    rag<B>/base    the top-k chunks a retriever finds, B tokens in all, read by the base model
    rag<B>/tuned   the same chunks read by the tuned reader
    gist           the document compressed into N gist tokens, stored as a file; the answer reads only it
                   (all of it, even for a ``gist_read: routed`` compressor: without an index there is no route)
    gist/gated     what ``gistkv ask`` does: the gist, with a passage index stored beside it; a question that
                   no passage of the document is about is declined without asking the gist (``gated.py``), and
                   a routed compressor reads the group of the closest passage (``gistkv.core.routing``)
    gist/empty     negative control: the gist of an empty document (what the gist model guesses unaided)

A method prepares a document once (``prepare``: read, compress, index) and then answers each question
(``answer``). Methods that read the whole document share one read of it (``SharedRead``): the base
weights read a document the same way for all of them, and each is charged that read's time.

    methods = build_methods(["full/base", "gist"], readers, retriever, budgets)   # gistkv.evaluation.registry
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gistkv.core.decode import Decoded, greedy_decode
from gistkv.core.kv import GistKV, answer_ids, compress_ids, text_sha256
from gistkv.core.prompt import query_text


def question_query(question: dict) -> str:
    """What follows the context: a task's own query (RULER, LongBench) or the free-form layout of ``gistkv ask``."""
    return question["query"] if "query" in question else query_text(question["question"])


def context_text(document: dict) -> str:
    """The text a method reads (or compresses) as the context: a task's own preamble, then the context."""
    return document.get("prefix", "") + document["context"]


class SharedRead:
    """One document's read by the base weights, made once; methods get their own copy (or the read
    itself when only one method uses it) and are each charged ``seconds``. The copies exist only because
    the read is shared, so their time (``copy_s``, summed) is not charged to anyone."""

    def __init__(self, reader, context_ids: list[int], consumers: int):
        start = time.perf_counter()
        self.cache = reader.encode_context(context_ids)
        self.seconds = time.perf_counter() - start
        self.consumers, self.copy_s = consumers, 0.0

    def get(self):
        import copy

        if self.consumers <= 1:
            return self.cache
        start = time.perf_counter()
        cache = copy.deepcopy(self.cache)
        self.copy_s += time.perf_counter() - start
        return cache


@dataclass
class Prepared:
    state: object
    budget_tokens: int            # context tokens (or gist tokens) the answer attends to, the question not counted
    extra: dict = field(default_factory=dict)


class FullContext:
    uses_shared_read = True

    def __init__(self, reader, reader_name: str):
        self.reader, self.reader_name = reader, reader_name
        self.name = f"full/{reader_name}"

    def prepare(self, document: dict, context_ids: list[int], shared: SharedRead) -> Prepared:
        return Prepared((shared.get(), len(context_ids)), len(context_ids))

    def answer(self, prepared: Prepared, question: dict, max_new_tokens: int) -> Decoded:
        cache, length = prepared.state
        query = self.reader.layout.query_ids(question_query(question))
        decoded = greedy_decode(self.reader.model, torch.tensor([query], device=self.reader.device), cache=cache,
                                prefix_len=length, first_position=length, max_new_tokens=max_new_tokens,
                                stop_ids=self.reader.stop_ids)
        cache.crop(length - cache.get_seq_length())     # back to the document alone for the next question
        return decoded


class Retrieval:
    uses_shared_read = False

    def __init__(self, reader, reader_name: str, retriever, chunk_tokens: int, top_k: int):
        self.reader, self.reader_name, self.retriever = reader, reader_name, retriever
        self.chunk_tokens, self.top_k = chunk_tokens, top_k
        self.name = f"rag{chunk_tokens * top_k}/{reader_name}"

    def prepare(self, document: dict, context_ids: list[int], shared: SharedRead | None) -> Prepared:
        self.retriever.add(document["id"], document["context"], self.chunk_tokens)
        return Prepared(document, self.chunk_tokens * self.top_k)

    def answer(self, prepared: Prepared, question: dict, max_new_tokens: int) -> Decoded:
        document = prepared.state
        hits = self.retriever.retrieve(document["id"], question["question"], self.chunk_tokens, self.top_k)
        retrieved = self.reader.layout.document_ids(document.get("prefix", "") + "\n".join(hit["text"] for hit in hits))
        cache = self.reader.encode_context(retrieved)
        query = self.reader.layout.query_ids(question_query(question))
        decoded = greedy_decode(self.reader.model, torch.tensor([query], device=self.reader.device), cache=cache,
                                prefix_len=len(retrieved), first_position=len(retrieved),
                                max_new_tokens=max_new_tokens, stop_ids=self.reader.stop_ids)
        if question.get("kind") == "present":    # did the retriever hand the reader the key?
            decoded.extra = {"retrieved_needle": any(question["answer"] in hit["text"] for hit in hits)}
        return decoded

    def finish(self, prepared: Prepared) -> None:
        self.retriever.drop(prepared.state["id"])


class Gist:
    """Compress (from the shared read), store the artifact, load it back, answer from it: the product's path."""

    uses_shared_read = True
    name = "gist"
    reader_name = "gist"
    file_suffix = ""            # beside the plain gist's file, gist/gated stores <id>.gated.safetensors

    def __init__(self, compressor, artifact_dir: str | Path | None = None):
        self.compressor = compressor
        self._scratch = None if artifact_dir else tempfile.TemporaryDirectory(prefix="gistkv-")
        self.artifact_dir = Path(artifact_dir or self._scratch.name)

    def prepare(self, document: dict, context_ids: list[int], shared: SharedRead) -> Prepared:
        gist_kv = compress_ids(self.compressor, context_ids, cache=shared.get())
        gist_kv.metadata["source_sha256"] = text_sha256(context_text(document))
        if (index := self.index(document)) is not None:
            index.attach(gist_kv)
        path = self.artifact_dir / f"{document['id']}{self.file_suffix}.safetensors"
        gist_kv.save(path)
        loaded = GistKV.load(path, self.compressor)
        return Prepared(loaded, loaded.num_gist, {"artifact_bytes": path.stat().st_size})

    def answer(self, prepared: Prepared, question: dict, max_new_tokens: int) -> Decoded:
        query = self.compressor.layout.query_ids(question_query(question))
        return answer_ids(self.compressor, prepared.state, query, max_new_tokens=max_new_tokens)

    def index(self, document: dict):
        """A passage index to store with the gist (gist/gated's, ``gated.py``); the plain gist stores none."""
        return None


class GistEmpty(Gist):
    """The gist of an empty document, for every document: a floor that says what the gist alone guesses."""

    uses_shared_read = False
    name = "gist/empty"
    reader_name = "gist"

    def __init__(self, compressor):
        super().__init__(compressor)
        self.empty: GistKV | None = None

    def prepare(self, document: dict, context_ids: list[int], shared: SharedRead | None) -> Prepared:
        if self.empty is None:      # made once: the first document is charged for it
            self.empty = compress_ids(self.compressor, self.compressor.layout.document_ids(""))
        return Prepared(self.empty, self.empty.num_gist)

    def reset(self) -> None:
        self.empty = None
