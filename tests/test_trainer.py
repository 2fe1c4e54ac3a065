"""The two-pass training loss (train.context_encoder: base) against the one-pass masked loss."""

import torch
from test_train import records, train_params

from gistkv.gist import GistCollator, add_gist_tokens
from gistkv.prompt import answer_text, encode, query_text
from gistkv.train import peft_wrap
from gistkv.trainer import two_pass_loss


def batch_and_model(tokenizer, tiny_model):
    gist_ids = add_gist_tokens(tokenizer, tiny_model, 2)
    model = peft_wrap(tiny_model, gist_ids, train_params(lora_r=4, lora_alpha=8), quantized=False)
    examples = [{"context_ids": encode(tokenizer, record["context"] + " and more" * index),   # two lengths: padding
                 "query_ids": encode(tokenizer, query_text(record["question"], record["answer_prefix"])),
                 "answer_ids": encode(tokenizer, answer_text(record["answer"]))}
                for index, record in enumerate(records(2))]
    return model, GistCollator(gist_ids, tokenizer.pad_token_id)(examples), len(gist_ids)


def one_pass_loss(model, batch):
    return model(**{key: value for key, value in batch.items() if key != "segments"}).loss


def test_two_pass_loss_equals_one_pass_while_the_adapter_is_a_no_op(tokenizer, tiny_model):
    model, batch, num_gist = batch_and_model(tokenizer, tiny_model)
    with torch.no_grad():         # fresh LoRA (B = 0): base and adapted context are the same
        torch.testing.assert_close(two_pass_loss(model, batch, num_gist, torch.float32, True),
                                   one_pass_loss(model, batch), atol=1e-5, rtol=1e-4)


def test_two_pass_reads_the_context_without_the_adapter_and_trains_it(tokenizer, tiny_model):
    model, batch, num_gist = batch_and_model(tokenizer, tiny_model)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
        adapted = one_pass_loss(model, batch)
    loss = two_pass_loss(model, batch, num_gist, torch.float32, True)
    assert not torch.allclose(loss, adapted, atol=1e-3)     # the adapter no longer touches the context
    loss.backward()
    grads = {name: weight.grad for name, weight in model.named_parameters() if weight.requires_grad}
    assert grads and all(grad is not None and torch.isfinite(grad).all() for grad in grads.values())
    assert any(grad.abs().sum() > 0 for name, grad in grads.items() if "lora_A" in name)
