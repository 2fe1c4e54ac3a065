"""The context cache the gist/question pass of training reads but never writes.

With ``train.context_encoder: base`` a training step reads the context once without gradients and
runs ``[gist; query; answer]`` on top of its KV cache. A ``DynamicCache`` appends the tail's keys
and values to itself, so under gradient checkpointing the backward replay of a decoder layer would
append them a second time — which is why transformers' checkpointed layers drop the cache
(``GradientCheckpointingLayer``), and the question pass would lose its context. ``ReadOnlyCache``
returns ``[context; tail]`` keys and values (the same ``torch.cat`` a ``DynamicCache`` does) and
keeps only the context, so a replay reads the same states and ``keep_cache_when_checkpointing``
can let the layers keep it. The tail's own KV is never needed after its logits.

    keep_cache_when_checkpointing(model)          # once, after gradient_checkpointing_enable()
    cache = context_cache(model, context_ids, adapter_off=True)
    if reads_context_read_only(model):
        cache = ReadOnlyCache(cache)
    logits = model(input_ids=tail_ids[None], cache=cache, ...).logits
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer
from transformers.modeling_layers import GradientCheckpointingLayer


MARK = "_gistkv_read_only_context"


class ReadOnlyCache(DynamicCache):
    """A full-attention ``DynamicCache``'s context, shared (not copied), that ``update`` never changes."""

    def __init__(self, context: DynamicCache):
        super().__init__()
        if any(type(layer) is not DynamicLayer for layer in context.layers):
            # Sliding or linear-attention layers keep a window of what they are given: a plain
            # concatenation would not be what they attend to.
            raise ValueError("ReadOnlyCache holds full-attention layers only, got "
                             f"{sorted({type(layer).__name__ for layer in context.layers})}.")
        self.layers = list(context.layers)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        layer = self.layers[layer_idx]
        return torch.cat([layer.keys, key_states], dim=-2), torch.cat([layer.values, value_states], dim=-2)


def keep_cache_when_checkpointing(model) -> int:
    """Let every checkpointed decoder layer of ``model`` keep the cache it is given (the number of layers),
    and mark ``model`` so that its training tail pass reads the context through a ``ReadOnlyCache``.

    Safe only while every pass with gradients that hands the layers a cache hands them a ``ReadOnlyCache``:
    training's tail pass does (``trainer.tail_logits``); reads without gradients are never checkpointed.
    """
    layers = [module for module in model.modules() if isinstance(module, GradientCheckpointingLayer)]
    for layer in layers:
        layer._can_checkpoint_with_cache = True
    setattr(model, MARK, True)
    return len(layers)


def reads_context_read_only(model) -> bool:
    """Whether ``keep_cache_when_checkpointing`` marked ``model`` (without checkpointing the tail pass
    writes to an ordinary cache, as before: sliding-window layers keep working)."""
    return getattr(model, MARK, False)
