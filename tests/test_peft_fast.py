"""gistkv.training.peft_fast: the same numbers as peft's own trainable tokens and disable_adapter (to float rounding)."""

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from test_trainer import batch_and_model, one_pass_loss, perturb_adapter
from tiny import tiny_llama

from gistkv.core.gist import add_gist_tokens
from gistkv.training.peft_fast import adapters_off, fast_trainable_tokens
from gistkv.training.trainer import two_pass_loss


GIST_ROWS_AND_LORA = ("lora_B", "trainable_tokens_delta")


def train_a_few_steps(model, batch, num_gist: int, loss_of) -> tuple[list[float], dict]:
    optimizer = torch.optim.AdamW([weight for weight in model.parameters() if weight.requires_grad], lr=1e-2)
    losses = []
    for _ in range(3):
        loss = loss_of(model, batch, num_gist)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses, {name: weight.detach().clone() for name, weight in model.named_parameters() if weight.requires_grad}


def peft_and_fast(tokenizer):
    """Two identical peft models on the same tiny Llama weights (tied embeddings); the second switched."""
    add_gist_tokens(tokenizer, None, 2)     # first, so that both models get the same vocabulary size
    (peft_model, batch, num_gist), (fast_model, _, _) = (
        batch_and_model(tokenizer, tiny_llama(len(tokenizer))) for _ in range(2))
    # peft_wrap switches every model it wraps: put peft's own forward back on the first.
    for module in peft_model.modules():
        if hasattr(module, "_gistkv_peft_forward"):
            module.forward = module._gistkv_peft_forward
    for model in (peft_model, fast_model):
        perturb_adapter(model, GIST_ROWS_AND_LORA)
    return peft_model, fast_model, batch, num_gist


def test_training_with_fast_trainable_tokens_matches_peft(tokenizer):
    for loss_of in (lambda model, batch, num_gist: two_pass_loss(model, batch, num_gist, torch.float32, True),
                    lambda model, batch, num_gist: one_pass_loss(model, batch)):   # two rows: a gist id twice
        peft_model, fast_model, batch, num_gist = peft_and_fast(tokenizer)
        peft_losses, peft_weights = train_a_few_steps(peft_model, batch, num_gist, loss_of)
        fast_losses, fast_weights = train_a_few_steps(fast_model, batch, num_gist, loss_of)
        assert fast_losses == pytest.approx(peft_losses, rel=1e-6, abs=0) and peft_losses[0] > peft_losses[-1]
        assert peft_weights.keys() == fast_weights.keys()
        assert any("trainable_tokens_delta" in name for name in fast_weights)
        for name, weight in peft_weights.items():
            # Float rounding only: the gradient of a gist row is summed in another order (peft: a
            # vocabulary-sized index_add; here: the rows' own sum), which is bit-identical on some CPUs
            # (Xeon, AVX512) and not on others (AMD EPYC, AVX2: last-bit differences).
            torch.testing.assert_close(fast_weights[name], weight, rtol=1e-5, atol=1e-6, msg=name)


def test_fast_trainable_tokens_switches_the_embedding_and_a_tied_head_once(tokenizer):
    for tied, layers in ((True, 2), (False, 1)):
        base = tiny_llama(len(tokenizer))
        if not tied:
            base.config.tie_word_embeddings = False
            base.lm_head.weight = torch.nn.Parameter(base.lm_head.weight.detach().clone())
        model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"],
                                                trainable_token_indices={"embed_tokens": [3, 5]}))
        assert fast_trainable_tokens(model) == layers
        assert fast_trainable_tokens(model) == 0      # already switched


def test_merged_adapter_gives_what_the_fast_forward_gave(tokenizer):
    model = get_peft_model(tiny_llama(len(tokenizer)), LoraConfig(
        r=4, target_modules=["q_proj"], trainable_token_indices={"embed_tokens": [3, 5]}))
    fast_trainable_tokens(model)
    perturb_adapter(model, GIST_ROWS_AND_LORA)
    ids = torch.tensor([[1, 3, 7, 5, 3]])
    with torch.no_grad():
        fast = model(input_ids=ids).logits
        merged = model.merge_and_unload()(input_ids=ids).logits
    torch.testing.assert_close(fast, merged, atol=1e-5, rtol=1e-5)


def test_adapters_off_reads_like_peft_disable_adapter_and_restores_the_switches(tokenizer):
    _, model, batch, _ = peft_and_fast(tokenizer)
    ids = batch["input_ids"][:1]
    trainable = [(name, weight.requires_grad) for name, weight in model.named_parameters()]
    with torch.no_grad():
        with model.disable_adapter():
            peft_off = model(input_ids=ids).logits
        with adapters_off(model):
            ours_off = model(input_ids=ids).logits
        adapted = model(input_ids=ids).logits
    assert torch.equal(peft_off, ours_off)
    assert not torch.equal(ours_off, adapted)                  # the adapter is back on afterwards
    assert [(name, weight.requires_grad) for name, weight in model.named_parameters()] == trainable
    assert model._adapters_disabled is False


def test_the_tied_head_backward_runs_under_autocast_with_a_float32_head():
    """QLoRA keeps the (tied) head in float32 while autocast multiplies in bfloat16: the backward must multiply in
    the gradient's dtype and hand each input a gradient of its own dtype (it raised a dtype mismatch on a GPU)."""
    from gistkv.training.peft_fast import _HeadWithRows

    torch.manual_seed(0)
    hidden = torch.randn(2, 3, 8, requires_grad=True)
    weight = torch.randn(16, 8)
    rows = weight[[4, 9]].clone().requires_grad_(True)
    index = torch.tensor([4, 9])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = _HeadWithRows.apply(hidden, rows, weight.clone(), index)
    assert logits.dtype == torch.bfloat16
    logits.float().square().sum().backward()
    assert hidden.grad.dtype == torch.float32 and rows.grad.dtype == torch.float32
    # the same gradient as autograd's own linear, to bfloat16's precision
    hidden_ref, rows_ref = hidden.detach().clone().requires_grad_(True), rows.detach().clone().requires_grad_(True)
    full = weight.clone().index_put((index,), rows_ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = F.linear(hidden_ref, full)
    reference.float().square().sum().backward()
    assert torch.allclose(hidden.grad, hidden_ref.grad, rtol=0.05, atol=0.05)
    assert torch.allclose(rows.grad, rows_ref.grad, rtol=0.05, atol=0.05)
