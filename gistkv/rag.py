"""Retrieval baseline: token chunks -> all-MiniLM-L6-v2 -> ChromaDB (embedded, persistent) -> top-k.

One collection per evaluation set; each chunk carries ``context_id`` and ``chunk_index``
metadata, and queries filter on ``context_id``. Retrieved chunks go back into the prompt in
their original order.

    from gistkv.rag import RagIndex
    index = RagIndex("data/eval/rag_index_niah_en", "niah_en", embedder, tokenizer, 64, 16)
    index.add("doc-1", text); index.retrieve("doc-1", "What is the pass key?", top_k=2)
"""

from __future__ import annotations

from pathlib import Path

from gistkv.embedder import MiniLMEmbeddingFunction
from gistkv.errors import GistkvError


def chunk_token_spans(num_tokens: int, chunk_tokens: int, overlap: int) -> list[tuple[int, int]]:
    if chunk_tokens <= 0 or not 0 <= overlap < chunk_tokens:
        raise GistkvError(f"evaluate.rag_chunk_overlap: must be in [0, rag_chunk_tokens) (got {overlap}, {chunk_tokens}).")
    step = chunk_tokens - overlap
    spans = []
    for start in range(0, max(num_tokens, 1), step):
        spans.append((start, min(start + chunk_tokens, num_tokens)))
        if start + chunk_tokens >= num_tokens:
            break
    return spans


class RagIndex:
    def __init__(self, path: str | Path, name: str, embedder, tokenizer, chunk_tokens: int, overlap: int):
        import chromadb
        from chromadb.config import Settings

        self.client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        self.collection = self.client.get_or_create_collection(
            name=name, embedding_function=MiniLMEmbeddingFunction(embedder), metadata={"hnsw:space": "cosine"})
        self.tokenizer = tokenizer
        self.chunk_tokens, self.overlap = chunk_tokens, overlap

    def chunks(self, text: str) -> list[list[int]]:
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        return [ids[start:end] for start, end in chunk_token_spans(len(ids), self.chunk_tokens, self.overlap)]

    def add(self, context_id: str, text: str) -> int:
        """Index a context (idempotent: ids are stable, upsert replaces); returns the chunk count."""
        chunk_ids = self.chunks(text)
        self.collection.upsert(
            ids=[f"{context_id}#{index}" for index in range(len(chunk_ids))],
            documents=[self.tokenizer.decode(ids) for ids in chunk_ids],
            metadatas=[{"context_id": context_id, "chunk_index": index, "num_tokens": len(ids)}
                       for index, ids in enumerate(chunk_ids)])
        return len(chunk_ids)

    def retrieve(self, context_id: str, question: str, top_k: int) -> list[dict]:
        """Top-k chunks of one context for the question, returned in document order."""
        found = self.collection.query(query_texts=[question], n_results=top_k, where={"context_id": context_id},
                                      include=["documents", "metadatas", "distances"])
        hits = [{"text": text, **meta, "distance": distance} for text, meta, distance
                in zip(found["documents"][0], found["metadatas"][0], found["distances"][0])]
        return sorted(hits, key=lambda hit: hit["chunk_index"])
