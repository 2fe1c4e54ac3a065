"""The gist mask (one pass) and the gist cache (two passes) must give the same answer logits."""

import torch
from transformers import DynamicCache

from gistkv.core.compressor import untrained_compressor
from gistkv.core.decode import greedy_decode
from gistkv.core.gist import AFTER, CONTEXT, GIST, PAD, GistCollator, add_gist_tokens, gist_attention_mask, model_inputs
from gistkv.core.kv import compress_ids


def make_example(tokenizer, context: str, question: str, answer: str) -> dict:
    ids = lambda text: tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
    return {"context_ids": ids(context), "query_ids": ids(question), "answer_ids": ids(answer),
            "questions": [(ids(question), ids(answer))]}


def two_pass_logits(model, compressor, example) -> torch.Tensor:
    gist_kv = compress_ids(compressor, example["context_ids"])
    cache = gist_kv.to_cache("cpu", torch.float32)
    after = example["query_ids"] + example["answer_ids"]
    from gistkv.core.gist import prefix_attention_mask

    n = gist_kv.num_gist
    positions = torch.arange(gist_kv.position_offset, gist_kv.position_offset + len(after))[None]
    out = model(input_ids=torch.tensor([after]), attention_mask=prefix_attention_mask(n, len(after), torch.float32),
                position_ids=positions, cache=cache, use_cache=True)
    return out.logits[0]


def test_add_gist_tokens_is_idempotent(tokenizer, tiny_model):
    first = add_gist_tokens(tokenizer, tiny_model, 4)
    size = len(tokenizer)
    rows = tiny_model.get_input_embeddings().weight.shape[0]
    second = add_gist_tokens(tokenizer, tiny_model, 4)
    assert first == second and len(tokenizer) == size
    assert tiny_model.get_input_embeddings().weight.shape[0] == rows
    assert len(set(first)) == 4 and all(tokenizer.convert_ids_to_tokens(i) == f"<GIST_{k}>" for k, i in enumerate(first))


def test_mask_blocks_context_from_query_and_ignores_padding():
    segments = torch.tensor([[CONTEXT, CONTEXT, GIST, AFTER, PAD]])
    allowed = gist_attention_mask(segments, torch.float32)[0, 0] == 0
    assert not allowed[3, 0] and not allowed[3, 1] and allowed[3, 2] and allowed[3, 3]
    assert allowed[2, 0] and allowed[2, 1]           # gist sees the context
    assert not allowed[:4, 4].any()                  # nobody attends to padding


def test_one_pass_mask_equals_two_pass_cache(tokenizer, tiny_model):
    compressor = untrained_compressor(tiny_model, tokenizer, num_gist_tokens=3)
    examples = [make_example(tokenizer, "The grass is green. The pass key is 12345. The sky is blue.",
                             " What is the pass key?", " 12345"),
                make_example(tokenizer, "대한민국은 민주공화국이다. 패스키는 67890입니다.", " 패스키는 무엇입니까?", " 67890")]
    batch = GistCollator(compressor.gist_ids, tokenizer.pad_token_id)(examples)   # mixed lengths -> padding
    with torch.no_grad():
        one_pass = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              position_ids=batch["position_ids"]).logits
        for row, example in enumerate(examples):
            start = len(example["context_ids"]) + 3
            after_len = len(example["query_ids"]) + len(example["answer_ids"])
            expected = one_pass[row, start:start + after_len]
            actual = two_pass_logits(tiny_model, compressor, example)
            torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)


def test_negative_control_without_mask_query_sees_context(tokenizer, tiny_model):
    compressor = untrained_compressor(tiny_model, tokenizer, num_gist_tokens=3)
    example = make_example(tokenizer, "The grass is green. The pass key is 12345.", " What is it?", " 12345")
    masked = GistCollator(compressor.gist_ids, tokenizer.pad_token_id)([example])
    unmasked = GistCollator(compressor.gist_ids, tokenizer.pad_token_id, use_gist_mask=False)([example])
    with torch.no_grad():
        with_mask = tiny_model(**model_inputs(masked, labels=False)).logits
        without_mask = tiny_model(**model_inputs(unmasked, labels=False)).logits
        two_pass = two_pass_logits(tiny_model, compressor, example)
    start = len(example["context_ids"]) + 3
    torch.testing.assert_close(two_pass, with_mask[0, start:], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(two_pass, without_mask[0, start:], atol=1e-3)


def test_greedy_decode_on_gist_cache_matches_one_pass_argmax(tokenizer, tiny_model):
    compressor = untrained_compressor(tiny_model, tokenizer, num_gist_tokens=2)
    example = make_example(tokenizer, "The sky is blue. The pass key is 12345.", " What is the pass key?", "")
    gist_kv = compress_ids(compressor, example["context_ids"])
    decoded = greedy_decode(tiny_model, torch.tensor([example["query_ids"]]), cache=gist_kv.to_cache("cpu", torch.float32),
                            prefix_len=2, first_position=gist_kv.position_offset, max_new_tokens=4)
    # Re-run the whole thing as one masked pass, token by token.
    generated = []
    for _ in range(4):
        batch = GistCollator(compressor.gist_ids, tokenizer.pad_token_id)(
            [{"context_ids": example["context_ids"], "questions": [(example["query_ids"] + generated, [])]}])
        with torch.no_grad():
            logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                position_ids=batch["position_ids"]).logits
        generated.append(int(logits[0, -1].argmax()))
    assert decoded.token_ids == generated
    assert decoded.kv_bytes > 0 and decoded.attended_tokens == 2 + len(example["query_ids"])


def test_gist_rows_are_made_on_the_embeddings_device():
    """The seeded noise is drawn on the CPU (the same rows everywhere) and moved to the vocabulary's device: a CUDA
    model's first gist training failed here. A meta tensor stands in for a GPU one."""
    import torch

    from gistkv.core.gist import gist_init

    vocab = torch.randn(10, 4)
    assert gist_init(vocab.to("meta"), 2).device.type == "meta"
    assert torch.equal(gist_init(vocab, 2), gist_init(vocab, 2))
