"""The three ways of answering a question about a long context, behind one interface.

    full  - the base model reads the whole context
    rag   - top-k retrieved chunks of the context (ChromaDB + all-MiniLM-L6-v2)
    gist  - the gist tokens' KV cache from data/gist_kv (the context is never re-read)

Every method builds the same query (``gistkv.prompt``) and decodes with ``gistkv.decode``.
Look methods up by name in ``METHODS``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from gistkv.decode import Decoded, greedy_decode
from gistkv.errors import GistkvError
from gistkv.kv import GistKV, answer_ids
from gistkv.prompt import encode, query_text


def stop_ids_for(tokenizer) -> set[int]:
    """End of text, or a newline: every prompt asks for a one-line answer."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    newline = tokenizer.convert_tokens_to_ids("Ċ") if "Ċ" in tokenizer.get_vocab() else None
    if newline is not None:
        ids.add(newline)
    return ids


def record_query(record: dict) -> str:
    """What follows the context: a NIAH question + answer prefix, or a task's own prompt suffix."""
    return record["query"] if "query" in record else query_text(record["question"], record["answer_prefix"])


class FullContext:
    name = "full"

    def __init__(self, model, tokenizer, device: str):
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.stop_ids = stop_ids_for(tokenizer)

    def prepare(self, record: dict) -> dict:
        return {"context_repr_tokens": record["context_tokens"]}

    def answer(self, record: dict, max_new_tokens: int) -> Decoded:
        ids = encode(self.tokenizer, record.get("prefix", "") + record["context"]) + encode(self.tokenizer, record_query(record))
        return greedy_decode(self.model, torch.tensor([ids], device=self.device), max_new_tokens=max_new_tokens,
                             stop_ids=self.stop_ids)


class Rag(FullContext):
    name = "rag"

    def __init__(self, model, tokenizer, device: str, index, top_k: int):
        super().__init__(model, tokenizer, device)
        self.index, self.top_k = index, top_k
        self.retrieved: dict[str, list[dict]] = {}

    def prepare(self, record: dict) -> dict:
        start = time.perf_counter()
        self.index.add(record["id"], record["context"])
        index_s = time.perf_counter() - start
        hits = self.index.retrieve(record["id"], record["question"], self.top_k)
        self.retrieved[record["id"]] = hits
        return {"index_s": index_s, "context_repr_tokens": sum(hit["num_tokens"] for hit in hits),
                **({"retrieved_needle": any(record["needle"][:20] in hit["text"] for hit in hits)}
                   if "needle" in record else {})}

    def answer(self, record: dict, max_new_tokens: int) -> Decoded:
        context = record.get("prefix", "") + "\n".join(hit["text"] for hit in self.retrieved[record["id"]])
        ids = encode(self.tokenizer, context) + encode(self.tokenizer, record_query(record))
        return greedy_decode(self.model, torch.tensor([ids], device=self.device), max_new_tokens=max_new_tokens,
                             stop_ids=self.stop_ids)


class Gist:
    name = "gist"

    def __init__(self, compressor, kv_dir: str | Path, manifest: dict[str, dict], compress_s: dict[str, float]):
        self.compressor, self.kv_dir, self.manifest = compressor, Path(kv_dir), manifest
        self.compress_s = compress_s
        self.tokenizer = compressor.tokenizer
        self.loaded: dict[str, GistKV] = {}

    def prepare(self, record: dict) -> dict:
        entry = self.manifest.get(record["id"])
        if entry is None:
            raise GistkvError(f"{self.kv_dir}/manifest.json: no artifact for {record['id']}; re-run extract_gist_kv.")
        self.loaded[record["id"]] = GistKV.load(self.kv_dir / entry["file"], self.compressor)
        return {"compress_s": self.compress_s.get(record["id"], float("nan")), "context_repr_tokens": self.compressor.meta["num_gist_tokens"],
                "artifact_bytes": entry["bytes"]}

    def answer(self, record: dict, max_new_tokens: int) -> Decoded:
        prompt = encode(self.tokenizer, record_query(record))
        return answer_ids(self.compressor, self.loaded[record["id"]], prompt, max_new_tokens=max_new_tokens)


METHODS = ("full", "rag", "gist")
