"""Two peft operations a gist training step makes, done without their per-call overhead.

**Trainable gist-token rows.** peft's ``trainable_token_indices`` (``TrainableTokensLayer``)
builds the whole embedding matrix with the trained rows swapped in (``index_copy``) on every
forward pass — once for the input embedding and once more for a tied LM head — and its backward
pass makes a dense gradient the size of the vocabulary (a zero-filled (vocab, hidden) tensor for
the embedding, a (vocab, tokens) x (tokens, hidden) matmul for the head) only to keep the gist
rows of it. For SmolLM2 (49k x 576) that is ~0.35 s of a 1.8 s training step on a 2-core CPU,
the same at every context length. ``fast_trainable_tokens`` keeps peft's parameters, state
dict, merge and save, and replaces only that forward pass:

- the embedding looks tokens up in the frozen weight and puts the trained rows in where a gist
  token stands (a gather either way: the same numbers);
- the tied head multiplies by a copy of the weight kept across steps, whose gist rows are
  rewritten from the trained rows before each forward (the same matmul as peft's), and its
  backward computes the gradient of the gist rows alone.

On a CPU the loss, every gradient and hence the trained adapter come out as peft's own: bit for
bit on the Xeon (AVX512) host, to the last bit of float rounding on an AVX2 one, where a gist row
used twice sums its gradient in another order (``tests/test_peft_fast.py``); anything else (merged or disabled adapters, several
adapters, other layer types, ``max_norm``) goes through peft's forward unchanged.

**Adapters off for the context read.** ``PeftModel.disable_adapter()`` builds the whole model
status (``get_model_status``, ~65 ms here) on every call, only to warn about an irregular mix of
enabled and disabled layers. ``adapters_off`` switches the same layers the same way
(``enable_adapters`` on every tuner layer, as peft's ``disable_adapter_layers`` does) without it.

    model = get_peft_model(model, LoraConfig(..., trainable_token_indices={"embed_tokens": gist_ids}))
    fast_trainable_tokens(model)   # -> the number of layers switched
    with adapters_off(model):
        cache = model(input_ids=context_ids, use_cache=True).past_key_values
"""

from __future__ import annotations

import types
from contextlib import contextmanager

import torch
import torch.nn.functional as F


class _HeadWithRows(torch.autograd.Function):
    """``F.linear(hidden, weight_with_rows)`` whose backward returns the gradient of the
    trained rows only (the frozen rest of the weight needs none)."""

    @staticmethod
    def forward(ctx, hidden, rows, weight_with_rows, index):
        ctx.save_for_backward(hidden)
        ctx.weight_with_rows, ctx.index, ctx.rows_dtype = weight_with_rows, index, rows.dtype
        return F.linear(hidden, weight_with_rows)

    @staticmethod
    def backward(ctx, grad_logits):
        # Under autocast F.linear multiplied in the logits' dtype (bfloat16) while the head stays float32
        # (QLoRA keeps unquantized weights in float32): multiply back in that dtype, return each input's own.
        (hidden,) = ctx.saved_tensors
        weight = ctx.weight_with_rows.to(grad_logits.dtype)
        grad_hidden = grad_logits.matmul(weight).to(hidden.dtype)       # (..., hidden), as F.linear's backward
        grad_logits_2d = grad_logits.reshape(-1, weight.shape[0])       # (tokens, vocab)
        hidden_2d = hidden.reshape(-1, weight.shape[1]).to(grad_logits.dtype)             # (tokens, hidden)
        grad_rows = grad_logits_2d[:, ctx.index].t().mm(hidden_2d).to(ctx.rows_dtype)     # (rows, hidden)
        return grad_hidden, grad_rows, None, None


def _embed(layer, token_ids: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    base = layer.base_layer
    embedded = F.embedding(token_ids, base.weight, padding_idx=base.padding_idx)    # (..., hidden)
    match = token_ids.unsqueeze(-1) == index                                        # (..., rows)
    at = match.any(-1)
    if at.any():
        embedded = embedded.clone()
        embedded[at] = rows[match[at].int().argmax(-1)]
    if (scale := layer._get_embed_scale()) is not None:
        embedded = embedded * scale.to(embedded.dtype)
    return embedded


def _head(layer, hidden: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    weight = layer.base_layer.weight
    kept = getattr(layer, "_gistkv_weight_with_rows", None)
    if kept is None or kept.dtype != weight.dtype or kept.device != weight.device:
        kept = weight.detach().clone()
        layer._gistkv_weight_with_rows = kept
    with torch.no_grad():
        kept.index_copy_(0, index, rows.detach())
    return _HeadWithRows.apply(hidden, rows, kept, index)


def _fast_forward(layer, inputs: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    adapters = layer.active_adapters
    base = layer.base_layer
    plain = (not layer.disable_adapters and not layer.merged and len(adapters) == 1 and not args and not kwargs
             and ((isinstance(base, torch.nn.Embedding) and base.max_norm is None and not base.sparse)
                  or (type(base) is torch.nn.Linear and base.bias is None)))
    if not plain:
        return layer._gistkv_peft_forward(inputs, *args, **kwargs)
    weight = base.weight
    index = torch.tensor(layer.token_indices[adapters[0]], device=weight.device)
    rows = layer.trainable_tokens_delta[adapters[0]].to(weight)     # (rows, hidden), differentiable cast
    if isinstance(base, torch.nn.Embedding):
        return _embed(layer, inputs, index, rows)
    return _head(layer, inputs, index, rows)


def fast_trainable_tokens(model) -> int:
    """Switch every peft ``TrainableTokensLayer`` of ``model`` to the row-only forward; returns how many."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    switched = 0
    for module in model.modules():
        if isinstance(module, TrainableTokensLayer) and not hasattr(module, "_gistkv_peft_forward"):
            module._gistkv_peft_forward = module.forward
            module.forward = types.MethodType(_fast_forward, module)
            switched += 1
    return switched


@contextmanager
def adapters_off(model):
    """``model.disable_adapter()`` for a LoRA/trainable-token ``PeftModel``, without the model
    status check; adapters that were off stay off."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    was_off = model._adapters_disabled
    layers = [module for module in model.base_model.model.modules()
              if isinstance(module, (BaseTunerLayer, AuxiliaryTrainingWrapper))]
    enabled = [not module.disable_adapters for module in layers if isinstance(module, BaseTunerLayer)]
    for module in layers:
        module.enable_adapters(False)
    model._adapters_disabled = True
    try:
        yield model
    finally:
        if any(enabled):    # as peft: back on unless every layer was off before
            for module in layers:
                module.enable_adapters(True)
        model._adapters_disabled = was_off
