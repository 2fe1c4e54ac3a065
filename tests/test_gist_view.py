"""train.gist_view "chunks" / "groups:G": each gist token (or group of them) reads its own stretch of the context, in
training and in compression alike."""

import pytest
import torch
import torch.nn.functional as F
from test_gist import two_pass_logits
from test_trainer import perturb_adapter
from test_train import documents, train_params

from gistkv.core.compressor import ContextRead, untrained_compressor
from gistkv.core.gist import GistCollator, add_gist_tokens, gist_view_blocked, prefix_attention_mask, tail_attention_mask
from gistkv.core.kv import compress_ids
from gistkv.core.prompt import prompt_layout
from gistkv.errors import GistkvError
from gistkv.training.train import peft_wrap
from gistkv.training.routes import question_groups
from gistkv.training.train_records import tokenize_documents
from gistkv.training.trainer import two_pass_loss


def test_each_gist_token_sees_its_chunk_and_the_first_token():
    blocked = gist_view_blocked(10, 3, "chunks")
    seen = [torch.nonzero(~row).flatten().tolist() for row in blocked]
    assert seen == [[0, 1, 2], [0, 3, 4, 5], [0, 6, 7, 8, 9]]
    assert gist_view_blocked(10, 3, "all") is None
    with pytest.raises(GistkvError, match="gist_view"):
        gist_view_blocked(10, 3, "halves")


def test_a_group_of_gist_tokens_shares_its_chunk():
    blocked = gist_view_blocked(10, 6, "groups:2")
    seen = [torch.nonzero(~row).flatten().tolist() for row in blocked]
    assert seen == [[0, 1, 2, 3, 4]] * 3 + [[0, 5, 6, 7, 8, 9]] * 3
    assert torch.equal(gist_view_blocked(10, 3, "groups:3"), gist_view_blocked(10, 3, "chunks"))
    for bad in ("groups:4", "groups:0", "groups:two", "groups"):     # more groups than tokens, none, not a number
        with pytest.raises(GistkvError, match=r"gist_view: must be one of all, chunks, groups:G"):
            gist_view_blocked(10, 3, bad)


@pytest.mark.parametrize("view, first_changes", [("chunks", False), ("all", True)])
def test_a_change_in_the_last_chunk_reaches_only_the_last_gist_token(tokenizer, tiny_model, view, first_changes):
    compressor = untrained_compressor(tiny_model, tokenizer, 3, gist_view=view)
    context = tokenizer("the weather was mild and birds sang in the trees all day long", add_special_tokens=False).input_ids
    changed = context[:-1] + [context[-1] + 1]
    one, two = compress_ids(compressor, context), compress_ids(compressor, changed)
    # (layer 0's keys and values come from the gist tokens' own embeddings: the last layer's show what they read)
    assert torch.equal(one.values[-1][:, :2], two.values[-1][:, :2]) != first_changes
    assert not torch.equal(one.values[-1][:, 2], two.values[-1][:, 2])


def test_the_training_loss_is_the_loss_of_the_compressed_gist(tokenizer, tiny_model):
    """two_pass_loss with "chunks" equals answering each question from compress_ids' gist cache."""
    gist_ids = add_gist_tokens(tokenizer, tiny_model, 3)
    model = peft_wrap(tiny_model, gist_ids, train_params(lora_r=4, lora_alpha=8), quantized=False)
    perturb_adapter(model)          # the adapter acts on the gist tokens, not on the context read
    example = tokenize_documents(documents(1), prompt_layout(tokenizer))[0]
    batch = GistCollator(gist_ids, tokenizer.pad_token_id)([example])
    compressor = untrained_compressor(model, tokenizer, 3, context_read=ContextRead("base"), gist_view="chunks")
    with torch.no_grad():
        trained = two_pass_loss(model, batch, 3, torch.float32, True, gist_view="chunks")
        everything = two_pass_loss(model, batch, 3, torch.float32, True)
        total, count = 0.0, 0
        for query_ids, answer_ids in example["questions"]:
            logits = two_pass_logits(model, compressor, {"context_ids": example["context_ids"],
                                                         "query_ids": list(query_ids), "answer_ids": list(answer_ids)})
            total += F.cross_entropy(logits[len(query_ids) - 1:-1], torch.tensor(answer_ids), reduction="sum")
            count += len(answer_ids)
    torch.testing.assert_close(trained, total / count, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(trained, everything, atol=1e-4)     # the view changes what the gist reads


def test_chunks_need_the_two_pass_read():
    with pytest.raises(GistkvError, match="gist_view"):
        train_params(gist_view="chunks", context_encoder="adapted").validate("train")
    with pytest.raises(GistkvError, match="gist_view"):
        train_params(gist_view="thirds").validate("train")


def test_a_routed_question_reads_only_its_group():
    mask = tail_attention_mask(4, 4, 2, torch.float32, gist_view="groups:2", after_reads=torch.tensor([1, -1]))
    seen = (mask[0, 0, 4:, 4:8] == 0).int().tolist()        # the two question rows' view of the four gist tokens
    assert seen == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert (mask[0, 0, 4:, :4] != 0).all()                   # and of the context: nothing, routed or not


def test_question_groups_follow_the_key_and_draw_one_for_an_absent_answer(tokenizer):
    layout = prompt_layout(tokenizer)
    document = documents(1)[0]
    filler = " The grass is green." * 12
    early, late = dict(document, context=document["context"] + filler), dict(document, context=filler + document["context"])
    assert question_groups(early, layout, 3)[0] == 0 and question_groups(late, layout, 3)[0] == 2
    absent = question_groups(early, layout, 3)[1]
    assert 0 <= absent < 3 and absent == question_groups(late, layout, 3)[1]     # drawn from the question's text
    moved = dict(document, context=document["context"].replace("The pass key", "The key"))
    with pytest.raises(GistkvError, match="needle"):
        question_groups(moved, layout, 3)
    recital = {"kind": "recall", "family": "", "name": "", "question": "Recite every number.", "answer": "…"}
    assert question_groups(dict(early, questions=early["questions"] + [recital]), layout, 3)[-1] == -1   # every group


def test_the_routed_training_loss_is_the_loss_of_the_routed_gist(tokenizer, tiny_model):
    """two_pass_loss with gist_read routed equals answering each question from its group of the compressed gist."""
    gist_ids = add_gist_tokens(tokenizer, tiny_model, 4)
    model = peft_wrap(tiny_model, gist_ids, train_params(lora_r=4, lora_alpha=8), quantized=False)
    perturb_adapter(model)
    document = documents(1)[0]
    document = dict(document, context=" The grass is green." * 6 + document["context"])     # the key in the second half
    example = tokenize_documents([document], prompt_layout(tokenizer), routed_groups=2)[0]
    assert example["reads"][0] == 1
    batch = GistCollator(gist_ids, tokenizer.pad_token_id)([example])
    compressor = untrained_compressor(model, tokenizer, 4, context_read=ContextRead("base"), gist_view="groups:2")
    with torch.no_grad():
        routed = two_pass_loss(model, batch, 4, torch.float32, True, gist_view="groups:2")
        unrouted = two_pass_loss(model, {key: value for key, value in batch.items() if key != "reads"}, 4,
                                 torch.float32, True, gist_view="groups:2")
        whole = compress_ids(compressor, example["context_ids"])
        total, count = 0.0, 0
        for (query_ids, answer_ids), group in zip(example["questions"], example["reads"]):
            logits = group_logits(model, whole.only_group(group, "groups:2"), list(query_ids) + list(answer_ids))
            total += F.cross_entropy(logits[len(query_ids) - 1:-1], torch.tensor(answer_ids), reduction="sum")
            count += len(answer_ids)
    torch.testing.assert_close(routed, total / count, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(routed, unrouted, atol=1e-4)


def group_logits(model, gist_kv, after: list[int]) -> torch.Tensor:
    """Logits of ``after`` read on top of a gist cache (of one group), at the positions answering continues from."""
    positions = torch.arange(gist_kv.position_offset, gist_kv.position_offset + len(after))[None]
    out = model(input_ids=torch.tensor([after]), cache=gist_kv.to_cache("cpu", torch.float32), use_cache=True,
                attention_mask=prefix_attention_mask(gist_kv.num_gist, len(after), torch.float32), position_ids=positions)
    return out.logits[0]


def test_routed_reads_need_groups():
    with pytest.raises(GistkvError, match="gist_read"):
        train_params(gist_read="routed").validate("train")
    with pytest.raises(GistkvError, match="gist_read"):
        train_params(gist_read="nearest", gist_view="groups:2").validate("train")
    train_params(gist_read="routed", gist_view="groups:2").validate("train")
