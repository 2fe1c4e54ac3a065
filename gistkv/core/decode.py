"""Greedy decoding on top of any KV prefix, with honest timings and the probability of each answer token.

Every method answers through this one loop so their numbers are comparable: ``full`` and ``rag``
continue a cache of (retrieved) context, ``gist`` the gist tokens' cache whose positions end at
``context_tokens + num_gist``. Masks are passed explicitly as 4-D tensors, so no library
heuristic has to guess how position ids relate to cache slots.

    decoded = greedy_decode(model, prompt_ids, cache=cache, prefix_len=512, first_position=512, max_new_tokens=8)
    decoded.token_ids, decoded.min_token_prob
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import DynamicCache

from gistkv.core.gist import prefix_attention_mask


def stop_ids_for(tokenizer) -> set[int]:
    """End of text, or a newline: every prompt asks for a one-line answer."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    if "Ċ" in tokenizer.get_vocab():
        ids.add(tokenizer.convert_tokens_to_ids("Ċ"))
    return ids


@dataclass
class Decoded:
    token_ids: list[int]
    ttft_s: float                  # prefill of the prompt + the first token
    decode_s: float                # the remaining tokens
    kv_bytes: int                  # cache size right after prefill (what answering attends to, question included)
    attended_tokens: int           # cache entries the first answer token attends to
    token_probs: list[float]       # the greedy token's probability at each step (stop token included)
    extra: dict = field(default_factory=dict)   # what a method adds to its row (e.g. did retrieval find the fact)

    @property
    def decode_tokens_per_s(self) -> float:
        steps = len(self.token_ids) - 1
        return steps / self.decode_s if steps > 0 and self.decode_s > 0 else float("nan")

    @property
    def min_token_prob(self) -> float:
        """How sure the model was of its least sure token: a confidence for the whole answer."""
        return min(self.token_probs) if self.token_probs else float("nan")


def cache_bytes(cache) -> int:
    return sum(layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
               for layer in cache.layers if getattr(layer, "keys", None) is not None and layer.keys.numel())


def model_dtype(model) -> torch.dtype:
    embeddings = model.get_input_embeddings()
    # peft's trainable-token wrapper answers `.weight` by building its whole merged matrix (a
    # vocabulary-sized copy, ~85 ms for SmolLM2 on a CPU): ask the frozen module it wraps.
    wrapped = getattr(embeddings, "original_module", None)
    return (wrapped if wrapped is not None else embeddings).weight.dtype


def _greedy(logits: torch.Tensor) -> tuple[int, float]:
    probs = torch.softmax(logits.float(), dim=-1)
    token = int(probs.argmax())
    return token, float(probs[token])


@torch.no_grad()
def greedy_decode(model, prompt_ids: torch.Tensor, *, cache=None, prefix_len: int = 0, first_position: int = 0,
                  max_new_tokens: int = 16, stop_ids: set[int] | None = None,
                  on_token: Callable[[int], None] | None = None) -> Decoded:
    """Decode greedily after ``prompt_ids`` (1, q) on top of ``cache`` holding ``prefix_len`` entries.

    ``first_position`` is the RoPE position of the first prompt token; with a gist cache it is
    context_tokens + num_gist, so positions continue exactly as in the single-pass layout. The
    cache grows by the prompt and the answer: crop it back to ``prefix_len`` to reuse it.
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
    next_id, prob = _greedy(out.logits[0, -1])
    ttft_s = time.perf_counter() - start
    tokens, probs = [next_id], [prob]
    if on_token:
        on_token(next_id)
    kv_len = prefix_len + query_len
    position = first_position + query_len
    start = time.perf_counter()
    while len(tokens) < max_new_tokens and next_id not in stop_ids:
        step_ids = torch.tensor([[next_id]], device=device)
        out = model(input_ids=step_ids, attention_mask=torch.zeros(1, 1, 1, kv_len + 1, dtype=dtype, device=device),
                    position_ids=torch.tensor([[position]], device=device), cache=out.cache, use_cache=True)
        next_id, prob = _greedy(out.logits[0, -1])
        tokens.append(next_id)
        probs.append(prob)
        if on_token:
            on_token(next_id)
        kv_len += 1
        position += 1
    decode_s = time.perf_counter() - start
    if tokens and tokens[-1] in stop_ids:
        tokens = tokens[:-1]
    return Decoded(token_ids=tokens, ttft_s=ttft_s, decode_s=decode_s, kv_bytes=kv_bytes,
                   attended_tokens=prefix_len + query_len, token_probs=probs)
