"""A trained gist compressor: base model + LoRA/gist-token adapter + what it is.

``models/gist/`` holds ``adapter/`` (peft), the tokenizer with the gist tokens, and
``compressor.json`` (base model id and sha256, num_tokens, gist token ids, position scheme,
dtype, device and quantization used in training).

    from gistkv.core.compressor import load_compressor
    compressor = load_compressor("models/gist")
"""

from __future__ import annotations

import functools
import json
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from gistkv.core.decode import model_dtype
from gistkv.core.gist import GIST_VIEWS, add_gist_tokens, gist_read_problem, is_gist_view
from gistkv.core.model import load_base
from gistkv.core.prompt import adds_bos, prompt_layout
from gistkv.errors import GistkvError
from gistkv.hardware import slow_autocast_warning
from gistkv.io import sha256_file
from gistkv.training.peft_fast import adapters_off

log = logging.getLogger(__name__)

COMPRESSOR_META = "compressor.json"
ADAPTER_DIR = "adapter"
POSITION_SCHEME = "contiguous: context 0..L-1, gist L..L+N-1, query continues at L+N"
# Who reads the context: "adapted" = the LoRA-adapted model (the adapter acts on every token),
# "base" = the unmodified base model (adapter off for the context; gist/query tokens use it).
CONTEXT_ENCODERS = ("adapted", "base")


# How the context is computed: "none" = in the weights' dtype; "bfloat16" = under torch.autocast
# (matmuls in bfloat16, the cache handed on in the weights' dtype). On a CPU with AVX512-BF16 a
# context read is ~2x faster, on one without ~3x slower (gistkv.hardware warns); training and
# inference read it the same way (compressor.json).
CONTEXT_AUTOCASTS = ("none", "bfloat16")


@dataclass(frozen=True)
class ContextRead:
    """How a document becomes the cache the gist tokens attend to: who reads it (``encoder``, one of
    CONTEXT_ENCODERS) and in which matmul precision (``autocast``, one of CONTEXT_AUTOCASTS).
    Training records it in compressor.json, so extraction and answering read a document the same way."""
    encoder: str = "adapted"
    autocast: str = "none"

    def unknown_value(self) -> tuple[str, str, str] | None:
        """(field, value, allowed values) of the first field outside its allowed values, else None;
        params.yaml and compressor.json each word their own error from it."""
        for key, value, allowed in (("context_encoder", self.encoder, CONTEXT_ENCODERS),
                                    ("context_autocast", self.autocast, CONTEXT_AUTOCASTS)):
            if value not in allowed:
                return key, value, ", ".join(allowed)
        return None

    @classmethod
    def from_meta(cls, meta: dict, where: Path) -> "ContextRead":
        read = cls(meta.get("context_encoder", cls.encoder), meta.get("context_autocast", cls.autocast))
        if unknown := read.unknown_value():
            key, value, allowed = unknown
            raise GistkvError(f"{where}: {key} {value!r} is not one of {allowed}.")
        return read


@torch.no_grad()
def context_cache(model, context_ids: torch.Tensor, adapter_off: bool, autocast: str = "none"):
    """KV cache of a context (1-D ids) at positions 0..L-1; ``adapter_off`` switches a peft model's
    adapter off for it (the "base" context encoder, in training and at inference); ``autocast``:
    one of CONTEXT_AUTOCASTS."""
    positions = torch.arange(len(context_ids), device=context_ids.device)[None]
    weights_dtype = model_dtype(model)
    cast = autocast != "none" and getattr(torch, autocast) != weights_dtype
    with adapters_off(model) if adapter_off else nullcontext(), \
            torch.autocast(context_ids.device.type, dtype=getattr(torch, autocast)) if cast else nullcontext():
        cache = model(input_ids=context_ids[None], position_ids=positions, use_cache=True, logits_to_keep=1).cache
    if cast:   # the gist/query pass runs in the weights' dtype and attends to this cache
        for layer in cache.layers:
            layer.keys, layer.values = layer.keys.to(weights_dtype), layer.values.to(weights_dtype)
    return cache


@dataclass
class Compressor:
    """A model that reads contexts and answers: the gist compressor, the plain-LoRA control, or the base model.

    ``model`` answers (and, for gist, runs the gist tokens); the context is read as training read it
    (``context_read``): with ``encoder`` "base" by the same weights with the adapter switched off, so
    no second copy of the base weights is kept. ``reads`` (``gistkv.training.base_reads.BaseReads``) may hold
    adapter-off reads shared across calls and across models of the same base weights.
    """
    model: object
    tokenizer: object
    gist_ids: list[int]
    meta: dict
    device: str
    context_read: ContextRead = ContextRead()
    reads: object = None

    @functools.cached_property
    def layout(self):
        """What surrounds a document and a query, as training laid them out (``gistkv.core.prompt``)."""
        return prompt_layout(self.tokenizer, bool(self.meta.get("chat_template", False)))

    @property
    def max_positions(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 1 << 30))

    @property
    def stop_ids(self) -> set[int]:
        from gistkv.core.decode import stop_ids_for

        return stop_ids_for(self.tokenizer) | set(self.layout.end_ids[:1])     # a chat turn's end, too

    @property
    def trained_context_tokens(self) -> int | None:
        """The longest context training read (None for the untuned base model or an older compressor)."""
        value = self.meta.get("trained_context_tokens")
        return int(value) if value is not None else None

    def encode_context(self, context_ids: list[int]):
        """KV cache of the context at positions 0..L-1, read as in training (see CONTEXT_ENCODERS)."""
        from transformers import DynamicCache

        if not context_ids:
            return DynamicCache()
        ids = torch.tensor(list(context_ids), device=self.device)
        read = self.context_read
        if read.encoder == "base" and self.reads is not None:
            return self.reads.cache(self.model, ids, read.autocast)
        adapter_off = read.encoder == "base" and hasattr(self.model, "disable_adapter")
        return context_cache(self.model, ids, adapter_off=adapter_off, autocast=read.autocast)

    @property
    def gist_view(self) -> str:
        """What each gist token sees of the context (``gistkv.core.gist.GIST_VIEWS``); "all" before it was recorded."""
        return self.meta.get("gist_view", "all")

    @property
    def gist_read(self) -> str:
        """What an answer reads of the gist (``gistkv.core.routing``): "all" groups, or "routed": one."""
        return self.meta.get("gist_read", "all")

    def identity(self) -> dict:
        return {key: self.meta[key] for key in ("base_model", "base_weights_sha256", "tokenizer_sha256",
                                                "adapter_sha256", "num_gist_tokens", "num_layers",
                                                "num_kv_heads", "head_dim")}


def model_shape(config) -> dict:
    return {"num_layers": config.num_hidden_layers,
            "num_kv_heads": getattr(config, "num_key_value_heads", config.num_attention_heads),
            "head_dim": getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads}


def resolve_base_dir(base_dir: str, gist_dir: Path) -> Path:
    path = Path(base_dir)
    if path.is_absolute() or path.exists():
        return path
    beside = (gist_dir / ".." / ".." / base_dir).resolve()   # models/gist -> repo root
    return beside if beside.exists() else path


REQUIRED_META = ("base_model", "base_weights_sha256", "base_dir", "num_gist_tokens", "gist_token_ids", "num_layers",
                 "num_kv_heads", "head_dim")


def read_compressor_meta(meta_path: Path) -> dict:
    """compressor.json, checked: a missing or damaged file is a one-line error naming the fix."""
    if not meta_path.exists():
        raise GistkvError(f"{meta_path}: missing; train a compressor first (dvc repro train_gist).")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise GistkvError(f"{meta_path}: not valid JSON ({err}); retrain or restore the folder.") from None
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise GistkvError(f"{meta_path}: lacks {', '.join(missing)}; it was not written by gistkv's training "
                          "(retrain: dvc repro train_gist).")
    return meta


def load_compressor(gist_dir: str | Path, *, base_dir: str | None = None, device: str | None = None,
                    gist_mask: bool = True) -> Compressor:
    """Load base + adapter as a compressor (``gist_mask=False``: the plain-LoRA control).

    Either kind refuses the other, because a model trained without the mask never learned to put
    the context into the gist. With the "adapted" context encoder the adapter is merged (one pass
    reads everything); with "base" it stays unmerged and is switched off for the context read, so
    one copy of the base weights serves both.
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    gist_dir = Path(gist_dir)
    meta_path = gist_dir / COMPRESSOR_META
    meta = read_compressor_meta(meta_path)
    if bool(meta.get("use_gist_mask", True)) != gist_mask:
        kind = "a gist compressor (trained with the gist mask)" if gist_mask else "the plain-LoRA control (no gist mask)"
        raise GistkvError(f"{meta_path}: use_gist_mask is {meta.get('use_gist_mask')}; expected {kind}.")
    base = load_base(resolve_base_dir(base_dir or meta["base_dir"], gist_dir), device=device)
    tokenizer = AutoTokenizer.from_pretrained(str(gist_dir))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    gist_ids = add_gist_tokens(tokenizer, base.model, int(meta["num_gist_tokens"]))
    if gist_ids != meta["gist_token_ids"]:
        raise GistkvError(f"{meta_path}: gist token ids {meta['gist_token_ids']} differ from the tokenizer's {gist_ids}.")
    # A compressor written before BOS was handled never started a read with it.
    if bool(meta.get("adds_bos", False)) != adds_bos(tokenizer):
        recorded = meta.get("adds_bos", "missing (a compressor from before BOS was handled)")
        raise GistkvError(f"{meta_path}: adds_bos is {recorded} but the tokenizer in {gist_dir} says "
                          f"{adds_bos(tokenizer)}; restore the tokenizer files training saved (or retrain).")
    # A compressor written before chat templates were handled read plain prompts.
    if bool(meta.get("chat_template", False)) != base.info["chat_template"]:
        raise GistkvError(f"{meta_path}: chat_template is {meta.get('chat_template', False)} but its base model "
                          f"({meta['base_dir']}) was prepared with model.chat_template: {base.info['chat_template']}; "
                          "prepare the base as training read it (or retrain).")
    recorded = meta.get("prompt_layout")       # absent before the ids were recorded
    layout = prompt_layout(tokenizer, bool(meta.get("chat_template", False)), str(gist_dir))
    if recorded is not None and recorded != layout.record():
        raise GistkvError(f"{meta_path}: prompt_layout {recorded} differs from what the tokenizer in {gist_dir} lays "
                          f"out now {layout.record()}; restore the tokenizer files training saved (or retrain).")
    context_read = ContextRead.from_meta(meta, meta_path)
    if not is_gist_view(meta.get("gist_view", "all")):
        raise GistkvError(f"{meta_path}: gist_view {meta['gist_view']!r} is not one of {', '.join(GIST_VIEWS)}.")
    if read_problem := gist_read_problem(meta.get("gist_read", "all"), meta.get("gist_view", "all")):
        raise GistkvError(f"{meta_path}: gist_read {read_problem}")
    if slow := slow_autocast_warning(context_read.autocast, base.info["device"]):
        log.warning("%s: %s", meta_path, slow)
    model = PeftModel.from_pretrained(base.model, str(gist_dir / ADAPTER_DIR))
    if context_read.encoder == "adapted" and base.info["quantization"] == "none":
        model = model.merge_and_unload()
    model.eval()
    meta = dict(meta, tokenizer_sha256=sha256_file(gist_dir / "tokenizer.json"),
                adapter_sha256=sha256_file(gist_dir / ADAPTER_DIR / "adapter_model.safetensors"))
    return Compressor(model=model, tokenizer=tokenizer, gist_ids=gist_ids, meta=meta, device=base.info["device"],
                      context_read=context_read)


def untrained_compressor(model, tokenizer, num_gist_tokens: int, device: str = "cpu",
                         context_read: ContextRead = ContextRead(), chat_template: bool = False,
                         gist_view: str = "all") -> Compressor:
    """Wrap any model as a compressor (tests, and accuracy checks during training).

    ``ContextRead(encoder="base")`` needs a peft model (its adapter is switched off for the context).
    """
    gist_ids = add_gist_tokens(tokenizer, model, num_gist_tokens)
    meta = {"base_model": getattr(model.config, "_name_or_path", "in-memory"), "base_weights_sha256": "in-memory",
            "tokenizer_sha256": "in-memory", "adapter_sha256": "none", "num_gist_tokens": num_gist_tokens,
            "gist_token_ids": gist_ids, "chat_template": chat_template, "gist_view": gist_view,
            **model_shape(model.config)}
    return Compressor(model=model, tokenizer=tokenizer, gist_ids=gist_ids, meta=meta, device=device,
                      context_read=context_read)

