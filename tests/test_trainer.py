"""The two-pass training loss (train.context_encoder: base) against the one-pass masked loss."""

import torch
from test_train import documents, train_params
from tiny import tiny_llama

from gistkv.core.gist import GistCollator, add_gist_tokens, model_inputs
from gistkv.core.prompt import prompt_layout
from gistkv.training.train import peft_wrap
from gistkv.training.train_records import tokenize_documents
from gistkv.training.trainer import two_pass_loss


def batch_and_model(tokenizer, tiny_model):
    gist_ids = add_gist_tokens(tokenizer, tiny_model, 2)
    model = peft_wrap(tiny_model, gist_ids, train_params(lora_r=4, lora_alpha=8), quantized=False)
    examples = tokenize_documents([dict(document, context=document["context"] + " and more" * index)   # two lengths
                                   for index, document in enumerate(documents(2))], prompt_layout(tokenizer))
    return model, GistCollator(gist_ids, tokenizer.pad_token_id)(examples), len(gist_ids)


def perturb_adapter(model, parts: tuple[str, ...] = ("lora_B",)) -> None:
    """Seeded random weights for the named adapter parts (a fresh LoRA B is 0: a no-op), so that the
    adapter changes what the model computes."""
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if any(part in name for part in parts):
                weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))


def one_pass_loss(model, batch):
    return model(**model_inputs(batch)).loss


def test_two_pass_loss_equals_one_pass_while_the_adapter_is_a_no_op(tokenizer, tiny_model):
    model, batch, num_gist = batch_and_model(tokenizer, tiny_model)
    with torch.no_grad():         # fresh LoRA (B = 0): base and adapted context are the same
        torch.testing.assert_close(two_pass_loss(model, batch, num_gist, torch.float32, True),
                                   one_pass_loss(model, batch), atol=1e-5, rtol=1e-4)


def test_two_pass_reads_the_context_without_the_adapter_and_trains_it(tokenizer, tiny_model):
    model, batch, num_gist = batch_and_model(tokenizer, tiny_model)
    perturb_adapter(model)
    with torch.no_grad():
        adapted = one_pass_loss(model, batch)
    loss = two_pass_loss(model, batch, num_gist, torch.float32, True)
    assert not torch.allclose(loss, adapted, atol=1e-3)     # the adapter no longer touches the context
    loss.backward()
    grads = {name: weight.grad for name, weight in model.named_parameters() if weight.requires_grad}
    assert grads and all(grad is not None and torch.isfinite(grad).all() for grad in grads.values())
    assert any(grad.abs().sum() > 0 for name, grad in grads.items() if "lora_A" in name)


def question_batches(tokenizer, tiny_model, answers: list[str]):
    """One batch per answer to the document's first question, the same document otherwise (two question blocks)."""
    gist_ids = add_gist_tokens(tokenizer, tiny_model, 2)
    model = peft_wrap(tiny_model, gist_ids, train_params(lora_r=4, lora_alpha=8), quantized=False)
    base = documents(1)[0]
    examples = []
    for answer in answers:
        questions = [dict(base["questions"][0], answer=answer)] + base["questions"][1:]
        examples.append(tokenize_documents([dict(base, questions=questions)], prompt_layout(tokenizer))[0])
    return model, [GistCollator(gist_ids, tokenizer.pad_token_id)([example]) for example in examples], examples


def test_each_question_is_a_block_laid_out_like_the_one_question_asked_at_inference(tokenizer, tiny_model):
    model, (batch,), (example,) = question_batches(tokenizer, tiny_model, ["12345"])
    assert len(example["questions"]) == 2 and tokenizer.decode(example["questions"][1][1]).startswith(" The document")
    first = len(example["context_ids"]) + 2          # every block starts right after the gist tokens
    blocks, positions = batch["blocks"][0], batch["position_ids"][0]
    assert blocks.max() == 2 and all(positions[blocks == block][0] == first for block in (1, 2))
    with torch.no_grad():     # one pass (masked) and two passes (cache + tail) agree with several blocks
        torch.testing.assert_close(two_pass_loss(model, batch, 2, torch.float32, True),
                                   one_pass_loss(model, batch), atol=1e-5, rtol=1e-4)


def test_a_question_block_does_not_see_the_blocks_before_it(tokenizer, tiny_model):
    # Same document, first answers that differ: the second question (block 2) comes after the first answer in
    # the sequence, yet its logits must not change.
    model, (batch, other), _ = question_batches(tokenizer, tiny_model, ["12345", "12399"])
    assert not torch.equal(batch["input_ids"], other["input_ids"])
    with torch.no_grad():
        logits = model(**model_inputs(batch, labels=False)).logits[0][batch["blocks"][0] == 2]
        other_logits = model(**model_inputs(other, labels=False)).logits[0][other["blocks"][0] == 2]
    torch.testing.assert_close(logits, other_logits, atol=1e-5, rtol=1e-4)


def test_bfloat16_context_read_is_close_and_hands_on_the_weights_dtype(tokenizer, tiny_model):
    """train.context_autocast: bfloat16 computes the context under autocast; the cache the fp32
    gist/query pass attends to is fp32 again, and the loss stays close to the fp32 read's."""
    from gistkv.core.compressor import context_cache

    model, batch, num_gist = batch_and_model(tokenizer, tiny_model)
    context = batch["input_ids"][0][:12]
    exact, cast = (context_cache(model, context, adapter_off=True, autocast=mode) for mode in ("none", "bfloat16"))
    assert {layer.keys.dtype for layer in cast.layers} == {torch.float32}
    assert not torch.equal(exact.layers[0].keys, cast.layers[0].keys)      # it did compute in bfloat16
    torch.testing.assert_close(cast.layers[-1].keys, exact.layers[-1].keys, atol=0.1, rtol=0.05)
    with torch.no_grad():
        torch.testing.assert_close(two_pass_loss(model, batch, num_gist, torch.float32, True, context_autocast="bfloat16"),
                                   two_pass_loss(model, batch, num_gist, torch.float32, True), atol=0.05, rtol=0.02)


def lora_gradients_of_one_step(tokenizer, gradient_checkpointing: bool) -> tuple[dict, int]:
    """The adapter's gradients of one two-pass step on the tiny Llama, and how many attention forwards it took (a replay in backward counts)."""
    base = tiny_llama(len(tokenizer))
    gist_ids = add_gist_tokens(tokenizer, base, 2)      # the same ids again: the tokenizer already holds them
    model = peft_wrap(base, gist_ids,
                      train_params(lora_r=4, lora_alpha=8, gradient_checkpointing=gradient_checkpointing), quantized=False)
    perturb_adapter(model)
    model.train()
    examples = tokenize_documents([dict(document, context=document["context"] + " and more" * index)
                                   for index, document in enumerate(documents(2))], prompt_layout(tokenizer))
    batch = GistCollator(gist_ids, tokenizer.pad_token_id)(examples)
    layer_forwards = []
    for layer in model.base_model.model.model.layers:
        layer.self_attn.register_forward_pre_hook(lambda module, args: layer_forwards.append(1))
    two_pass_loss(model, batch, len(gist_ids), torch.float32, True).backward()
    return {name: weight.grad.clone() for name, weight in model.named_parameters() if weight.requires_grad}, len(layer_forwards)


def test_gradient_checkpointing_with_the_base_context_encoder_gives_the_same_gradients(tokenizer):
    """The tail pass keeps its context cache under checkpointing (``ReadOnlyCache``); before, transformers'
    checkpointed layers dropped it and the question pass trained without the context."""
    add_gist_tokens(tokenizer, None, 2)     # once, so that both models get the same vocabulary size
    plain, plain_forwards = lora_gradients_of_one_step(tokenizer, gradient_checkpointing=False)
    checkpointed, checkpointed_forwards = lora_gradients_of_one_step(tokenizer, gradient_checkpointing=True)
    assert checkpointed_forwards > plain_forwards       # the layers really were replayed in backward
    assert plain.keys() == checkpointed.keys() and any("lora_A" in name for name in plain)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-5, atol=1e-7, msg=name)
