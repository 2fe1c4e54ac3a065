"""gistkv.training.base_reads: a held-out context is read once per run, and every use gets the same numbers."""

import torch
from test_trainer import batch_and_model, perturb_adapter

from gistkv.core.compressor import context_cache
from gistkv.training.base_reads import BaseReads
from gistkv.training.trainer import two_pass_loss


def same_cache(first, second) -> bool:
    return len(first.layers) == len(second.layers) and all(
        torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values) for a, b in zip(first.layers, second.layers))


def counting_forwards(model) -> list[int]:
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls


def test_a_context_is_read_once_and_each_use_gets_its_own_copy(tokenizer, tiny_model):
    model, batch, _ = batch_and_model(tokenizer, tiny_model)
    model.eval()
    ids = batch["input_ids"][0][:12]
    reads, calls = BaseReads(), counting_forwards(model)
    first = reads.cache(model, ids, "none")
    second = reads.cache(model, ids, "none")
    assert len(calls) == 1 and reads.kept_bytes > 0
    fresh = context_cache(model, ids, adapter_off=True)
    assert same_cache(first, fresh) and same_cache(second, fresh)
    first.layers[0].keys.add_(1.0)                          # a user's gist pass extends/changes its copy
    assert same_cache(reads.cache(model, ids, "none"), fresh)
    assert len(calls) == 2                                  # the kept read and the fresh one
    reads.cache(model, ids[:8], "none")
    assert len(calls) == 3                                  # another context: read


def test_over_the_byte_limit_contexts_are_read_each_time(tokenizer, tiny_model):
    model, batch, _ = batch_and_model(tokenizer, tiny_model)
    reads, calls = BaseReads(max_bytes=0), counting_forwards(model)
    for _ in range(2):
        reads.cache(model, batch["input_ids"][0][:12], "none")
    assert len(calls) == 2 and not reads.kept and reads.kept_bytes == 0


def test_held_out_loss_with_kept_reads_is_the_same_number(tokenizer, tiny_model):
    model, batch, num_gist = batch_and_model(tokenizer, tiny_model)
    perturb_adapter(model)
    with torch.no_grad():
        model.eval()
        fresh = two_pass_loss(model, batch, num_gist, torch.float32, True)
        reads = BaseReads()
        kept = [two_pass_loss(model, batch, num_gist, torch.float32, True, reads=reads) for _ in range(2)]
    assert all(torch.equal(loss, fresh) for loss in kept) and len(reads.kept) == 2
