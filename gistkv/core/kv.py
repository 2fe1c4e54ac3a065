"""Gist KV artifacts: compress a context once, save it as safetensors, answer from it later.

File layout (one ``.safetensors`` per compressed context, no pickle)::

    layer.{i}.key    (kv_heads, num_gist, head_dim)
    layer.{i}.value  (kv_heads, num_gist, head_dim)
    presence.vectors (passages, dim) int8, and presence.scales (passages,): optional, the passage index
                     ``gistkv ask`` checks before it answers (gistkv.core.presence)
    metadata         strings: format version, base model + weights sha256, tokenizer hash,
                     adapter hash, num_gist_tokens, num_layers, num_kv_heads, head_dim, dtype,
                     position_offset, context_tokens, source_sha256

    from gistkv.core.compressor import load_compressor
    from gistkv.core.kv import compress, answer
    comp = load_compressor("models/gist")
    kv = compress(comp, open("doc.txt").read()); kv.save("doc.gist.safetensors")
    print(answer(comp, GistKV.load("doc.gist.safetensors", comp), "What is the pass key?"))
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save
from transformers import DynamicCache

from gistkv.core.decode import Decoded, greedy_decode, model_dtype
from gistkv.core.gist import tail_attention_mask, token_groups
from gistkv.core.prompt import encode, query_text
from gistkv.errors import GistkvError
from gistkv.io import atomic_path

FORMAT_VERSION = "1"


@dataclass
class GistKV:
    """Keys and values of the gist tokens for every layer, and where answering continues."""

    keys: list[torch.Tensor]      # per layer: (kv_heads, num_gist, head_dim)
    values: list[torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    # Tensors stored beside the gist, by name (the passage index of gistkv.core.presence); kept opaque here so
    # that training, which reads gists, does not depend on the index's code.
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_gist(self) -> int:
        return self.keys[0].shape[1]

    @property
    def position_offset(self) -> int:
        return int(self.metadata["position_offset"])

    def only_group(self, group: int, gist_view: str) -> "GistKV":
        """The gist of one group of a ``groups:G`` view, the other groups' keys and values dropped: what a
        ``train.gist_read: routed`` answer reads. Answering still continues at ``position_offset``."""
        kept = [token for token, owner in enumerate(token_groups(gist_view, self.num_gist)) if owner == group]
        if not kept:
            raise GistkvError(f"gist group {group}: the {gist_view!r} view of {self.num_gist} gist tokens has no such group.")
        return GistKV([key[:, kept] for key in self.keys], [value[:, kept] for value in self.values],
                      self.metadata, self.extra)

    @property
    def context_tokens(self) -> int:
        return int(self.metadata["context_tokens"])

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    def to_cache(self, device, dtype) -> DynamicCache:
        """A fresh DynamicCache holding only the gist entries (batch 1); answering appends to it."""
        return DynamicCache(ddp_cache_data=[(k[None].to(device, dtype), v[None].to(device, dtype))
                                            for k, v in zip(self.keys, self.values)])

    def save(self, path: str | Path) -> None:
        tensors = {}
        for index, (key, value) in enumerate(zip(self.keys, self.values)):
            tensors[f"layer.{index}.key"] = key.contiguous().cpu()
            tensors[f"layer.{index}.value"] = value.contiguous().cpu()
        tensors.update({name: tensor.contiguous().cpu() for name, tensor in self.extra.items()})
        with atomic_path(path) as tmp:
            tmp.write_bytes(deterministic_safetensors(tensors, self.metadata))

    @classmethod
    def load(cls, path: str | Path, compressor=None) -> "GistKV":
        """Read a file; with ``compressor``, refuse one made for another model/tokenizer/adapter."""
        path = Path(path)
        if not path.exists():
            raise GistkvError(f"{path}: file not found.")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise GistkvError(f"{path}: not a readable safetensors file (truncated or corrupt: {err}).") from None
        if metadata.get("format") != "gistkv" or metadata.get("format_version") != FORMAT_VERSION:
            raise GistkvError(f"{path}: not a gistkv v{FORMAT_VERSION} artifact (metadata format="
                              f"{metadata.get('format')!r}, version={metadata.get('format_version')!r}).")
        broken = [key for key in REQUIRED_METADATA if not str(metadata.get(key, "")).isdigit()]
        if broken:
            raise GistkvError(f"{path}: metadata {', '.join(broken)} missing or not a number; the file is damaged "
                              "— recompress the document (gistkv compress).")
        num_layers = int(metadata["num_layers"])
        try:
            keys = [tensors[f"layer.{i}.key"] for i in range(num_layers)]
            values = [tensors[f"layer.{i}.value"] for i in range(num_layers)]
        except KeyError as err:
            raise GistkvError(f"{path}: tensor {err.args[0]} missing; the file is incomplete.") from None
        extra = {name: tensor for name, tensor in tensors.items() if not name.startswith("layer.")}
        gist_kv = cls(keys=keys, values=values, metadata=metadata, extra=extra)
        expected_shape = (int(metadata["num_kv_heads"]), int(metadata["num_gist_tokens"]), int(metadata["head_dim"]))
        bad = [i for i, k in enumerate(keys) if tuple(k.shape) != expected_shape or tuple(values[i].shape) != expected_shape]
        if bad:
            raise GistkvError(f"{path}: layer {bad[0]} has shape {tuple(keys[bad[0]].shape)}, metadata says {expected_shape}.")
        if compressor is not None:
            check_compatible(path, metadata, compressor.identity())
        return gist_kv


def deterministic_safetensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """safetensors bytes with a key-sorted header.

    The library writes its JSON header from a hash map whose order varies between runs; the
    format allows any order, so we re-emit the header sorted to get the same bytes every time.
    """
    raw = save(tensors, metadata=metadata)
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + header_len])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)          # keep the data section 8-byte aligned
    return struct.pack("<Q", len(text)) + text + raw[8 + header_len:]


# Integers a file must carry to be read at all.
REQUIRED_METADATA = ("num_layers", "num_kv_heads", "num_gist_tokens", "head_dim", "position_offset", "context_tokens")
# Fields that must agree between an artifact and the compressor that will read it.
IDENTITY_FIELDS = ("base_model", "base_weights_sha256", "tokenizer_sha256", "adapter_sha256", "num_gist_tokens",
                   "num_layers", "num_kv_heads", "head_dim")


def check_compatible(path, metadata: dict, identity: dict) -> None:
    for name in IDENTITY_FIELDS:
        if str(metadata.get(name)) != str(identity.get(name)):
            raise GistkvError(f"{path}: made with {name}={metadata.get(name)!r}, but the loaded compressor has "
                              f"{identity.get(name)!r}; recompress the document with this compressor.")


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@torch.no_grad()
def compress_ids(compressor, context_ids: list[int], cache=None) -> GistKV:
    """Read the context, run the gist tokens on top of it, keep only the gist tokens' keys and values.

    ``cache``: the context's read, when it is already made (``Compressor.encode_context``'s; it is extended).
    """
    model = compressor.model
    gist_ids = compressor.gist_ids
    max_positions = compressor.max_positions
    total = len(context_ids) + len(gist_ids)
    if total > max_positions:
        raise GistkvError(f"context has {len(context_ids)} tokens; with {len(gist_ids)} gist tokens that exceeds the "
                          f"model's {max_positions} positions — split the document and compress each part.")
    device = compressor.device
    cache = compressor.encode_context(context_ids) if cache is None else cache
    # Gist tokens see the context (all of it, or their chunk: compressor.gist_view) and each other causally:
    # training's mask (tail_attention_mask), with no tokens after the gist.
    out = model(input_ids=torch.tensor([list(gist_ids)], device=device),
                attention_mask=tail_attention_mask(len(context_ids), len(gist_ids), 0, model_dtype(model), device,
                                                   gist_view=compressor.gist_view),
                position_ids=torch.arange(len(context_ids), total, device=device)[None], cache=cache, use_cache=True,
                logits_to_keep=1)
    num_gist = len(gist_ids)
    # (kv_heads, num_gist, head_dim) per layer: the last num_gist slots are the gist tokens.
    keys = [layer.keys[0, :, -num_gist:, :].detach().cpu().clone() for layer in out.cache.layers]
    values = [layer.values[0, :, -num_gist:, :].detach().cpu().clone() for layer in out.cache.layers]
    metadata = dict(compressor.identity())
    metadata.update(format="gistkv", format_version=FORMAT_VERSION, dtype=str(keys[0].dtype).replace("torch.", ""),
                    position_offset=str(total), context_tokens=str(len(context_ids)))
    metadata = {key: str(value) for key, value in metadata.items()}
    return GistKV(keys=keys, values=values, metadata=metadata)


def compress(compressor, text: str, warn=None) -> GistKV:
    """Compress a document's text; records its sha256 so an answer can be traced to its source.

    An empty document is refused; ``warn`` (a callable taking one line) hears when the document is longer
    than anything the compressor was trained on.
    """
    text_tokens = len(encode(compressor.tokenizer, text))
    if not text_tokens:
        raise GistkvError("the document is empty (no tokens): there is nothing to compress.")
    context_ids = compressor.layout.document_ids(text)
    trained = compressor.trained_context_tokens
    if warn is not None and trained and text_tokens > trained:       # both count the text, without BOS
        warn(f"the document has {text_tokens:,} tokens; training never read more than {trained:,}, so answers "
             "from this gist are less reliable — consider splitting it.")
    gist_kv = compress_ids(compressor, context_ids)
    # No timings in the file: the same text and compressor must give the same bytes.
    gist_kv.metadata["source_sha256"] = text_sha256(text)
    return gist_kv


def answer_ids(compressor, gist_kv: GistKV, prompt_ids: list[int], max_new_tokens: int = 16,
               on_token=None) -> Decoded:
    """Answer ``prompt_ids`` (``compressor.layout.query_ids``: question, answer prefix) from the gist cache only."""
    model = compressor.model
    cache = gist_kv.to_cache(compressor.device, model_dtype(model))
    prompt = torch.tensor([list(prompt_ids)], device=compressor.device)
    return greedy_decode(model, prompt, cache=cache, prefix_len=gist_kv.num_gist,
                         first_position=gist_kv.position_offset, max_new_tokens=max_new_tokens,
                         stop_ids=compressor.stop_ids, on_token=on_token)


def answer(compressor, gist_kv: GistKV, question: str, max_new_tokens: int = 32, on_token=None) -> str:
    """Answer a free-form question from a gist artifact (several questions can reuse one GistKV)."""
    prompt_ids = compressor.layout.query_ids(query_text(question))
    decoded = answer_ids(compressor, gist_kv, prompt_ids, max_new_tokens=max_new_tokens, on_token=on_token)
    return compressor.tokenizer.decode(decoded.token_ids, skip_special_tokens=True)
