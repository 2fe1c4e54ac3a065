"""bitsandbytes' CPU repacking of NF4 weights: refused where the shape cannot be packed, never used while training.

On a host with AVX512-BF16 these tests fail without gistkv.core.nf4_cpu (a raise on the narrow layer; no gradient
through the packed one); on a host without it bitsandbytes never packs and they check the plain path.
"""

import torch
from bitsandbytes.functional import dequantize_4bit, has_avx512bf16
from bitsandbytes.nn import Linear4bit

from gistkv.core.nf4_cpu import can_pack, keep_trainable, limit_packing_to_packable


def four_bit(in_features: int, out_features: int) -> Linear4bit:
    torch.manual_seed(0)
    return Linear4bit(in_features, out_features, bias=False, compute_dtype=torch.float32, quant_type="nf4").to("cpu")


def test_a_layer_too_narrow_to_pack_runs_in_eval_mode():
    wide, narrow = four_bit(64, 64), four_bit(16, 32)     # input width 16 is below the 64-value quantization block
    model = torch.nn.Sequential(wide, torch.nn.ReLU(), torch.nn.Linear(64, 16), narrow).eval()
    assert can_pack(wide) and not can_pack(narrow)
    limit_packing_to_packable(model)
    assert wide.support_avx512bf16_for_cpu == bool(has_avx512bf16()) and not narrow.support_avx512bf16_for_cpu
    with torch.no_grad():
        assert model(torch.ones(2, 64)).shape == (2, 32)


def test_training_after_an_eval_pass_keeps_the_gradient_through_the_4bit_weight():
    layer = four_bit(64, 64).eval()
    with torch.no_grad():
        layer(torch.ones(1, 64))      # packs the weight for the inference kernel on an AVX512-BF16 host
    keep_trainable(layer)
    layer.train()
    weight = dequantize_4bit(layer.weight.data, layer.weight.quant_state)      # (out, in)
    inputs = torch.randn(3, 64, requires_grad=True)
    outputs = layer(inputs)
    outputs.sum().backward()
    assert torch.allclose(outputs, inputs @ weight.T, atol=1e-4)
    assert inputs.grad is not None and torch.allclose(inputs.grad, weight.sum(0).expand(3, 64), atol=1e-4)
    with torch.no_grad():
        layer.eval()(torch.ones(1, 64))       # a later held-out check stays on the trainable layout
    assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
