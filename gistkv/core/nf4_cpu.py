"""bitsandbytes' AVX512-BF16 repacking of NF4 weights on the CPU, allowed only where it is safe.

On a CPU with AVX512-BF16 (``gistkv doctor`` says whether the CPU has native bfloat16), a bitsandbytes
``Linear4bit`` repacks its weight the first time it runs in eval mode without gradients, once and for good, into a
layout that only an inference kernel (``F.gemv_4bit``, no autograd) reads. Two harms follow, both seen on such a host (docs/experiments.md):

* a layer whose input width is not a multiple of the quantization block cannot be packed and every forward raises
  ``shape '[32, 0]' is invalid`` (the tiny test models; CI failed on it);
* training after any eval-mode pass (a held-out check, the frozen base reading the context) runs that kernel, so no
  gradient flows back through the frozen 4-bit weights to earlier layers: a QLoRA probe diverged at step ~30 on such a
  host while the same run trained on a host without the flag.

    python -m pytest tests/test_nf4_cpu.py      # fails without this module on an AVX512-BF16 host
"""

from __future__ import annotations

# bitsandbytes packs rows in blocks of 32 output features (``_convert_weight_packed_for_cpu``'s block_n).
PACKED_ROWS = 32


def four_bit_layers(model) -> list:
    """Every bitsandbytes ``Linear4bit`` in ``model``."""
    from bitsandbytes.nn import Linear4bit

    return [module for module in model.modules() if isinstance(module, Linear4bit)]


def can_pack(layer) -> bool:
    """Whether bitsandbytes' CPU packing accepts this layer's weight shape (out, in)."""
    state = layer.weight.quant_state
    out_features, in_features = state.shape
    return out_features % PACKED_ROWS == 0 and in_features % state.blocksize == 0


def unpack(layer) -> None:
    """Bring an already packed weight back to the layout bitsandbytes trains through (its own best-effort inverse)."""
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

    if getattr(layer.weight.quant_state, "packing_format_for_cpu", False):
        layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
            layer.weight.data, layer.weight.quant_state)


def limit_packing_to_packable(model) -> None:
    """For inference: keep the fast packed kernel where the shape allows it, plain NF4 elsewhere."""
    for layer in four_bit_layers(model):
        if not can_pack(layer):
            layer.support_avx512bf16_for_cpu = False


def keep_trainable(model) -> None:
    """For training: no packing anywhere, so every forward keeps its gradient through the 4-bit weights."""
    for layer in four_bit_layers(model):
        unpack(layer)
        layer.support_avx512bf16_for_cpu = False

