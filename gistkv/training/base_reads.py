"""Base-model reads of contexts, made once and handed out as copies.

With the "base" context encoder the frozen base weights (a peft model with its adapter off, or the
base model itself: the same arithmetic) read a context the same way for every method and at every
step of a run. So the held-out checks of a training run read each of their contexts once per run,
and an evaluation reads each document once for every method that reads it whole (full context
with the base or the tuned reader, gist compression). ``BaseReads`` keeps those caches and hands
out a copy per use (decoding appends to the cache it is given); a copy is the same numbers as a new
read. It also keeps how long the one real read took, so every method that uses it is charged that
time. Kept up to ``max_bytes``; later contexts are read each time.

    reads = BaseReads()
    cache, read_s = reads.cache_and_seconds(model, context_ids, autocast="none")   # read once, then copies
"""

from __future__ import annotations

import copy
import time

import torch

from gistkv.core.compressor import context_cache
from gistkv.core.decode import cache_bytes

MAX_BYTES = 2 << 30     # 16 SmolLM2 contexts of up to 2,048 tokens take ~0.75 GiB in fp32


class BaseReads:
    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes, self.kept_bytes = max_bytes, 0
        self.kept: dict[tuple, tuple[object, float]] = {}

    def cache_and_seconds(self, model, context_ids: torch.Tensor, autocast: str):
        """The adapter-off KV cache of ``context_ids`` (1-D) as ``context_cache`` reads it, and the seconds
        its one real read took."""
        key = (tuple(context_ids.tolist()), str(context_ids.device), autocast)
        if key not in self.kept:
            start = time.perf_counter()
            read = context_cache(model, context_ids, adapter_off=hasattr(model, "disable_adapter"), autocast=autocast)
            seconds = time.perf_counter() - start
            size = cache_bytes(read)
            if self.kept_bytes + size > self.max_bytes:
                return read, seconds
            self.kept[key], self.kept_bytes = (read, seconds), self.kept_bytes + size
        read, seconds = self.kept[key]
        return copy.deepcopy(read), seconds

    def cache(self, model, context_ids: torch.Tensor, autocast: str):
        return self.cache_and_seconds(model, context_ids, autocast)[0]

    def clear(self) -> None:
        self.kept.clear()
        self.kept_bytes = 0
