"""Base-model reads of the held-out contexts, made once per training run.

With ``train.context_encoder: base`` the frozen base model (adapter off) reads a context the same
way at every step of a run, so the held-out checks — a loss and an accuracy every
``train.eval_steps``, each reading the same 16 contexts — need each context read only once.
``BaseReads`` keeps those caches and hands out a copy per use (the gist pass appends to the cache
it is given); a copy is the same numbers as a new read, so the curves do not change. The
accuracy and loss checks of a SmolLM2 run re-read ~16 k context tokens each otherwise (~55 s per
check with bfloat16 reads on a 2-core CPU). Kept up to ``max_bytes``; later contexts are read each time.

    reads = BaseReads()
    cache = reads.cache(peft_model, context_ids, autocast="bfloat16")   # read once, then copies
"""

from __future__ import annotations

import copy

import torch

from gistkv.compressor import context_cache
from gistkv.decode import cache_bytes

MAX_BYTES = 2 << 30     # 16 SmolLM2 contexts of up to 2,048 tokens take ~0.75 GiB in fp32


class BaseReads:
    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes, self.kept_bytes = max_bytes, 0
        self.kept: dict[tuple, object] = {}

    def cache(self, model, context_ids: torch.Tensor, autocast: str):
        """The adapter-off KV cache of ``context_ids`` (1-D), as ``context_cache`` reads it."""
        key = (tuple(context_ids.tolist()), str(context_ids.device), autocast)
        if key not in self.kept:
            read = context_cache(model, context_ids, adapter_off=True, autocast=autocast)
            size = cache_bytes(read)
            if self.kept_bytes + size > self.max_bytes:
                return read
            self.kept[key], self.kept_bytes = read, self.kept_bytes + size
        return copy.deepcopy(self.kept[key])
