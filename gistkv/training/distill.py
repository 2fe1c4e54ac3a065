"""Hidden-state distillation from the plain-LoRA control (``train.distill_from``).

A present answer is a few digit tokens, so cross-entropy tells the gist little per question: which
number was wrong, not where the right one was. The control, which reads the whole document, has at
every layer and every question and answer token the states of a reader that found the fact. The
student's same tokens, which see only the gist, are pulled toward them (normalized squared error,
averaged over layers), so the gist is asked to carry what the control's question read from the
document (context distillation; KV-Distill). Both read the same context cache — the control also reads
its context with the base model, adapter off — so the teacher costs one tail pass without gradients.

    python stages/train_gist.py --params P    # P: train.distill_from: models/lora, train.distill_weight: 1.0
"""

from __future__ import annotations

from pathlib import Path

import torch

from gistkv.core.gist import tail_attention_mask
from gistkv.errors import GistkvError
from gistkv.training.read_only_cache import ReadOnlyCache


def load_teacher(control_dir: str | Path, base_dir: str | Path, device: str):
    """The control's peft model, frozen; refuses a gist compressor or a control that read its context itself."""
    from gistkv.core.compressor import load_compressor

    control = load_compressor(control_dir, base_dir=str(base_dir), device=device, gist_mask=False)
    if control.context_read.encoder != "base":
        raise GistkvError(f"{Path(control_dir) / 'compressor.json'}: context_encoder is "
                          f"{control.context_read.encoder!r}; train.distill_from needs a control trained with "
                          "context_encoder: base (it shares the student's context read).")
    control.model.eval()
    control.model.requires_grad_(False)
    return control.model


@torch.no_grad()
def teacher_states(teacher, cache, after_ids: torch.Tensor, after_positions: torch.Tensor,
                   after_blocks: torch.Tensor, context_len: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """The control's hidden states (one (T, H) tensor per layer) of the question and answer tokens,
    each block seeing the context and itself, as the control was trained; ``cache`` is left as it was."""
    mask = tail_attention_mask(context_len, 0, len(after_ids), dtype, after_ids.device, use_gist_mask=False,
                               after_blocks=after_blocks)
    output = teacher(input_ids=after_ids[None], cache=ReadOnlyCache(cache), use_cache=True, attention_mask=mask,
                     position_ids=after_positions[None], output_hidden_states=True, logits_to_keep=1)
    return tuple(state[0] for state in output.hidden_states[1:])


def state_loss(student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean over layers of ||student - teacher||² / ||teacher||²: every layer weighs alike whatever its scale."""
    per_layer = [((s.float() - t.float()) ** 2).sum() / (t.float() ** 2).sum().clamp_min(1e-6)
                 for s, t in zip(student, teacher, strict=True)]
    return torch.stack(per_layer).mean()
