"""Hidden-state distillation from the control (train.distill_from): the teacher's states line up with the student's."""

import pytest
import torch
from test_train import documents, train_params
from test_trainer import perturb_adapter

from gistkv.core.gist import GistCollator, add_gist_tokens
from gistkv.core.prompt import prompt_layout
from gistkv.errors import GistkvError
from gistkv.training.distill import state_loss
from gistkv.training.train import peft_wrap
from gistkv.training.train_records import tokenize_documents
from gistkv.training.trainer import two_pass_loss


def batch_for(tokenizer, model, gist_ids):
    examples = tokenize_documents(documents(2), prompt_layout(tokenizer))    # two question blocks each
    return GistCollator(gist_ids, tokenizer.pad_token_id, use_gist_mask=bool(gist_ids))(examples)


def test_a_control_taught_by_itself_matches_its_own_states(tokenizer, tiny_model):
    # Same model as student (no gist tokens, reading the context) and teacher: every position, block and mask lines
    # up only if the teacher's pass lays the tail out as the student's does, so the state loss is 0.
    control = peft_wrap(tiny_model, [], train_params(lora_r=4, lora_alpha=8), quantized=False)
    perturb_adapter(control)
    control.eval()
    distilled = []
    with torch.no_grad():
        plain = two_pass_loss(control, batch_for(tokenizer, control, []), 0, torch.float32, False)
        taught = two_pass_loss(control, batch_for(tokenizer, control, []), 0, torch.float32, False,
                               teacher=control, distill_weight=1.0, distilled=distilled)
    assert len(distilled) == 2 and max(distilled) < 1e-8
    torch.testing.assert_close(taught, plain)      # and the cross-entropy read the same, untouched context


def test_the_gist_student_is_pulled_toward_the_teacher(tokenizer, tiny_model):
    from tiny import tiny_llama

    teacher = peft_wrap(tiny_llama(len(tokenizer)), [], train_params(lora_r=4, lora_alpha=8), quantized=False)
    perturb_adapter(teacher)
    teacher.requires_grad_(False)
    gist_ids = add_gist_tokens(tokenizer, tiny_model, 2)
    student = peft_wrap(tiny_model, gist_ids, train_params(lora_r=4, lora_alpha=8), quantized=False)
    batch = batch_for(tokenizer, student, gist_ids)
    plain = two_pass_loss(student, batch, 2, torch.float32, True)
    distilled = []
    loss = two_pass_loss(student, batch, 2, torch.float32, True, teacher=teacher, distill_weight=1.0,
                         distilled=distilled)
    assert min(distilled) > 0 and loss > plain        # the student sees only the gist: its states differ
    loss.backward()
    assert any(weight.grad is not None and weight.grad.abs().sum() > 0
               for name, weight in student.named_parameters() if "lora_B" in name)   # fresh A: B = 0


def test_state_loss_weighs_each_layer_by_its_own_scale():
    teacher = (torch.ones(3, 4), 100 * torch.ones(3, 4))
    student = (torch.zeros(3, 4), 100 * torch.ones(3, 4))      # layer 1 all wrong, layer 2 right
    assert float(state_loss(student, teacher)) == pytest.approx(0.5)


def test_distilling_needs_the_gist_mask_and_a_shared_context_read():
    with pytest.raises(GistkvError, match="distill_from"):
        train_params(distill_from="models/lora", context_encoder="adapted").validate("train")
