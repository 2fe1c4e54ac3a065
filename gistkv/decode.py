"""Greedy decoding on top of any KV prefix, with honest timings.

All three methods answer through this one loop so their numbers are comparable:
``full`` and ``rag`` start from an empty cache, ``gist`` from the gist tokens' cache whose
positions end at ``context_tokens + num_gist``. Masks are passed explicitly as 4-D tensors,
so no library heuristic has to guess how position ids relate to cache slots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import DynamicCache

from gistkv.gist import prefix_attention_mask


@dataclass
class Decoded:
    token_ids: list[int]
    ttft_s: float                  # prefill of the prompt + the first token
    decode_s: float                # the remaining tokens
    kv_bytes: int                  # cache size right after prefill (what answering attends to)
    attended_tokens: int           # cache entries the first answer token attends to
    extra: dict = field(default_factory=dict)

    @property
    def decode_tokens_per_s(self) -> float:
        steps = len(self.token_ids) - 1
        return steps / self.decode_s if steps > 0 and self.decode_s > 0 else float("nan")


def cache_bytes(cache) -> int:
    return sum(layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
               for layer in cache.layers if getattr(layer, "keys", None) is not None and layer.keys.numel())


def model_dtype(model) -> torch.dtype:
    embeddings = model.get_input_embeddings()
    # peft's trainable-token wrapper answers `.weight` by building its whole merged matrix (a
    # vocabulary-sized copy, ~85 ms for SmolLM2 on a CPU): ask the frozen module it wraps.
    wrapped = getattr(embeddings, "original_module", None)
    return (wrapped if wrapped is not None else embeddings).weight.dtype


@torch.no_grad()
def greedy_decode(model, prompt_ids: torch.Tensor, *, cache=None, prefix_len: int = 0, first_position: int = 0,
                  max_new_tokens: int = 16, stop_ids: set[int] | None = None,
                  on_token: Callable[[int], None] | None = None) -> Decoded:
    """Decode greedily after ``prompt_ids`` (1, q) on top of ``cache`` holding ``prefix_len`` entries.

    ``first_position`` is the RoPE position of the first prompt token; with a gist cache it is
    context_tokens + num_gist, so positions continue exactly as in the single-pass layout.
    """
    device = prompt_ids.device
    dtype = model_dtype(model)
    cache = cache if cache is not None else DynamicCache()
    stop_ids = stop_ids or set()
    query_len = prompt_ids.shape[1]
    positions = torch.arange(first_position, first_position + query_len, device=device)[None]
    start = time.perf_counter()
    out = model(input_ids=prompt_ids, attention_mask=prefix_attention_mask(prefix_len, query_len, dtype, device),
                position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1)
    kv_bytes = cache_bytes(out.cache)
    next_id = int(out.logits[0, -1].argmax())
    ttft_s = time.perf_counter() - start
    tokens = [next_id]
    if on_token:
        on_token(next_id)
    kv_len = prefix_len + query_len
    position = first_position + query_len
    start = time.perf_counter()
    while len(tokens) < max_new_tokens and next_id not in stop_ids:
        step_ids = torch.tensor([[next_id]], device=device)
        out = model(input_ids=step_ids, attention_mask=torch.zeros(1, 1, 1, kv_len + 1, dtype=dtype, device=device),
                    position_ids=torch.tensor([[position]], device=device), cache=out.cache, use_cache=True)
        next_id = int(out.logits[0, -1].argmax())
        tokens.append(next_id)
        if on_token:
            on_token(next_id)
        kv_len += 1
        position += 1
    decode_s = time.perf_counter() - start
    if tokens and tokens[-1] in stop_ids:
        tokens = tokens[:-1]
    return Decoded(token_ids=tokens, ttft_s=ttft_s, decode_s=decode_s, kv_bytes=kv_bytes,
                   attended_tokens=prefix_len + query_len)
