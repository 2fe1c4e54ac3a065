"""The ways of answering a question about a long context, behind one interface.

    full  - the base model reads the whole context
    rag   - top-k retrieved chunks of the context (ChromaDB + all-MiniLM-L6-v2)
    gist  - the gist tokens' KV cache (stored by extract_gist_kv, or compressed in-process)
    lora  - control: the whole context through a LoRA trained on the same data *without* the
            gist mask, so gist's score is not confused with the effect of fine-tuning

Every method builds the same query (``gistkv.prompt``) and decodes with ``gistkv.decode``.
Build one by name with ``MethodBuilder``:

    builder = MethodBuilder(Path("models/base"), Path("models/gist"), Path("models/lora"), settings)
    method = builder.build("rag", rag_index_dir=Path("data/rag_index/niah_en"), collection="niah_en")
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from gistkv.decode import Decoded, greedy_decode
from gistkv.errors import GistkvError
from gistkv.io import read_json
from gistkv.kv import GistKV, answer_ids, compress_ids
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


def record_context_text(record: dict) -> str:
    """The text a method reads (or compresses) as the context: a task's own prefix, then the context."""
    return record.get("prefix", "") + record["context"]


def record_context_ids(tokenizer, record: dict) -> list[int]:
    return encode(tokenizer, record_context_text(record))


class FullContext:
    name = "full"

    def __init__(self, model, tokenizer, device: str):
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.stop_ids = stop_ids_for(tokenizer)

    def prepare(self, record: dict) -> dict:
        return {"context_repr_tokens": record["context_tokens"]}

    def prompt_ids(self, record: dict) -> list[int]:
        return record_context_ids(self.tokenizer, record) + encode(self.tokenizer, record_query(record))

    def answer(self, record: dict, max_new_tokens: int) -> Decoded:
        return greedy_decode(self.model, torch.tensor([self.prompt_ids(record)], device=self.device),
                             max_new_tokens=max_new_tokens, stop_ids=self.stop_ids)


class LoraControl(FullContext):
    """The plain-LoRA control (Mu et al.'s "positive control"): trained on the same examples with
    the same gist tokens in the sequence, but with ordinary causal attention, so the answer can
    read the context directly. It answers from the full context: compression 1x."""

    name = "lora"

    def __init__(self, compressor):
        super().__init__(compressor.model, compressor.tokenizer, compressor.device)
        self.compressor = compressor

    def answer(self, record: dict, max_new_tokens: int) -> Decoded:
        # The training layout: context (read as in training, see Compressor.encode_context), gist tokens, query.
        context_ids = record_context_ids(self.tokenizer, record)
        start = time.perf_counter()
        cache = self.compressor.encode_context(context_ids)
        encode_s = time.perf_counter() - start
        prompt = self.compressor.gist_ids + encode(self.tokenizer, record_query(record))
        decoded = greedy_decode(self.model, torch.tensor([prompt], device=self.device), cache=cache,
                                prefix_len=len(context_ids), first_position=len(context_ids),
                                max_new_tokens=max_new_tokens, stop_ids=self.stop_ids)
        decoded.ttft_s += encode_s          # reading the context is part of answering from it
        return decoded


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

    def prompt_ids(self, record: dict) -> list[int]:
        context = record.get("prefix", "") + "\n".join(hit["text"] for hit in self.retrieved[record["id"]])
        return encode(self.tokenizer, context) + encode(self.tokenizer, record_query(record))


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


class OnTheFlyGist:
    """Gist without stored artifacts: compress prefix + context in-process (timed apart), answer the query."""

    name = "gist"

    def __init__(self, compressor):
        self.compressor, self.tokenizer = compressor, compressor.tokenizer
        self.cache: dict = {}

    def prepare(self, record: dict) -> dict:
        start = time.perf_counter()
        self.cache[record["id"]] = compress_ids(self.compressor, record_context_ids(self.tokenizer, record))
        return {"compress_s": time.perf_counter() - start, "context_repr_tokens": len(self.compressor.gist_ids)}

    def answer(self, record: dict, max_new_tokens: int) -> Decoded:
        return answer_ids(self.compressor, self.cache.pop(record["id"]), encode(self.tokenizer, record_query(record)),
                          max_new_tokens=max_new_tokens)


METHODS = ("full", "rag", "gist", "lora")


class MethodBuilder:
    """Build methods by name, loading each model once (full and rag share the base model).

    ``settings`` carries rag_chunk_tokens, rag_chunk_overlap and rag_top_k (``EvaluateParams``).
    """

    def __init__(self, base_dir: Path, gist_dir: Path, lora_dir: Path, settings):
        self.base_dir, self.gist_dir, self.lora_dir, self.settings = Path(base_dir), Path(gist_dir), Path(lora_dir), settings
        self._base = None

    def base(self):
        if self._base is None:
            from gistkv.model import load_base

            self._base = load_base(self.base_dir)
        return self._base

    def build(self, name: str, *, rag_index_dir: Path, collection: str, gist_kv_dir: Path | None = None,
              compress_s: dict[str, float] | None = None):
        """``gist_kv_dir``: answer gist from stored artifacts (its manifest.json); else compress in-process."""
        if name not in METHODS:
            raise GistkvError(f"method {name!r}: unknown (known: {', '.join(METHODS)}).")
        if name in ("gist", "lora"):
            from gistkv.compressor import load_compressor

            if name == "lora":
                return LoraControl(load_compressor(self.lora_dir, gist_mask=False))
            compressor = load_compressor(self.gist_dir)
            if gist_kv_dir is None:
                return OnTheFlyGist(compressor)
            return Gist(compressor, gist_kv_dir, read_json(Path(gist_kv_dir) / "manifest.json"), compress_s or {})
        loaded = self.base()
        if name == "full":
            return FullContext(loaded.model, loaded.tokenizer, loaded.info["device"])
        from gistkv.embedder import load_embedder
        from gistkv.rag import RagIndex

        shutil.rmtree(rag_index_dir, ignore_errors=True)        # rebuilt from scratch: indexing time is measured
        index = RagIndex(rag_index_dir, collection, load_embedder(self.base_dir.parent / "embedder"), loaded.tokenizer,
                         self.settings.rag_chunk_tokens, self.settings.rag_chunk_overlap)
        return Rag(loaded.model, loaded.tokenizer, loaded.info["device"], index, self.settings.rag_top_k)
