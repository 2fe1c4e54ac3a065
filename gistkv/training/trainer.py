"""The HF ``Trainer`` pieces gist training adds: the two-pass loss, the curriculum order, and the
held-out accuracy curve.

With ``train.context_encoder: base`` the context is read by the frozen base model (adapter
off, no gradient) and only ``[gist; query; answer]`` runs with the adapter and backward, on top
of that cache. A step then costs about one forward pass over the context instead of a forward
and a backward through it, which is what makes long-context steps affordable on a CPU; it is
also how ``Compressor.encode_context`` reads a document at inference, so training and
inference agree.

    trainer_class = make_gist_trainer()
    trainer = trainer_class(..., num_gist=10, dtype=torch.float32, context_read=ContextRead("base"), ...)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gistkv.core.compressor import ContextRead, context_cache
from gistkv.core.gist import AFTER, CONTEXT, GIST, model_inputs, tail_attention_mask
from gistkv.io import write_json
from gistkv.training.base_reads import BaseReads
from gistkv.training.distill import state_loss, teacher_states
from gistkv.training.read_only_cache import ReadOnlyCache, reads_context_read_only

VAL_ACCURACY = "gistkv_val_accuracy.json"   # in each checkpoint: the held-out accuracy curve so far


def unwrap(model):
    """The peft model under a DDP wrapper (the adapter is switched on the model itself)."""
    return getattr(model, "module", model)


def tail_logits(model, context_ids: torch.Tensor, tail_ids: torch.Tensor, num_gist: int, dtype: torch.dtype,
                use_gist_mask: bool, tail_positions: torch.Tensor | None = None,
                tail_blocks: torch.Tensor | None = None, context_autocast: str = "none",
                reads: BaseReads | None = None, teacher=None, gist_view: str = "all",
                tail_reads: torch.Tensor | None = None):
    """Logits (T, vocab) of ``[gist; query; answer …]`` on top of the context as the base model reads it
    (adapter off, no gradient); positions continue after the context, as at inference
    (``tail_positions``/``tail_blocks``: the collator's, when the tail holds several question blocks;
    ``reads``: held-out contexts read once per run, for the checks; ``tail_reads``: the gist group each tail token
    reads, -1 for every group: the collator's ``reads``). With a ``teacher`` (``gistkv.training.distill``)
    it returns (logits, the student's and the teacher's hidden states of the question and answer tokens)."""
    context_len, tail_len = len(context_ids), len(tail_ids)
    device = tail_ids.device
    if tail_positions is None:
        tail_positions = torch.arange(context_len, context_len + tail_len, device=device)
    cache = (reads.cache(unwrap(model), context_ids, context_autocast) if reads is not None
             else context_cache(unwrap(model), context_ids, adapter_off=True, autocast=context_autocast))
    if reads_context_read_only(unwrap(model)):      # gradient checkpointing: a replayed layer must see the same context
        cache = ReadOnlyCache(cache)
    after_blocks = tail_blocks[num_gist:] if tail_blocks is not None else None
    taught = None
    if teacher is not None:     # first: the student's pass may append its own keys to the cache
        taught = teacher_states(teacher, cache, tail_ids[num_gist:], tail_positions[num_gist:] - num_gist,
                                after_blocks, context_len, dtype)
    output = model(input_ids=tail_ids[None], cache=cache, use_cache=True,
                   attention_mask=tail_attention_mask(context_len, num_gist, tail_len - num_gist, dtype, device,
                                                      use_gist_mask, after_blocks, gist_view,
                                                      tail_reads[num_gist:] if tail_reads is not None else None),
                   position_ids=tail_positions[None], output_hidden_states=teacher is not None)
    if teacher is None:
        return output.logits[0]
    return output.logits[0], tuple(state[0, num_gist:] for state in output.hidden_states[1:]), taught


def two_pass_loss(model, inputs: dict, num_gist: int, dtype: torch.dtype, use_gist_mask: bool,
                  num_items_in_batch=None, context_autocast: str = "none",
                  reads: BaseReads | None = None, teacher=None, distill_weight: float = 0.0,
                  distilled: list | None = None, gist_view: str = "all") -> torch.Tensor:
    """Answer-token cross-entropy with the context read by the base model (``tail_logits``).

    Rows run one at a time (each has its own context length); the loss is the summed token loss
    over ``num_items_in_batch`` when the Trainer counts items, else the mean per answer token.
    With a ``teacher``, each row adds ``distill_weight`` x its state loss (``gistkv.training.distill``)
    per answer token, and appends that state loss to ``distilled`` (for the log).
    """
    total, count = None, 0
    for row in range(inputs["input_ids"].shape[0]):
        segments, ids, labels = inputs["segments"][row], inputs["input_ids"][row], inputs["labels"][row]
        in_tail = (segments == GIST) | (segments == AFTER)
        result = tail_logits(model, ids[segments == CONTEXT], ids[in_tail], num_gist, dtype, use_gist_mask,
                             inputs["position_ids"][row][in_tail], inputs["blocks"][row][in_tail], context_autocast,
                             reads, teacher, gist_view, inputs["reads"][row][in_tail] if "reads" in inputs else None)
        logits = result[0] if teacher is not None else result
        tail_labels = labels[in_tail]
        # Token t predicts token t+1, as in the single-pass causal LM loss.
        # (Across a block boundary the target is the next block's first query token: never a label.)
        row_loss = F.cross_entropy(logits[:-1].float(), tail_labels[1:], ignore_index=-100, reduction="sum")
        row_count = int((tail_labels[1:] != -100).sum())
        if teacher is not None:
            states = state_loss(result[1], result[2])
            row_loss = row_loss + distill_weight * states * row_count
            if distilled is not None:
                distilled.append(float(states.detach()))
        total = row_loss if total is None else total + row_loss
        count += row_count
    return total / (num_items_in_batch if num_items_in_batch is not None else max(count, 1))


def make_gist_trainer():
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    class GistTrainer(Trainer):
        """``Trainer`` with the collator's ``segments`` consumed here: one masked pass ("adapted")
        or two passes ("base"); with ``curriculum`` the (length-sorted) set is visited in order.
        ``checks_s`` adds up the time spent in ``evaluate`` (held-out loss and, through the callbacks
        it calls, held-out accuracy), so the training time can be told apart from the measuring."""

        def __init__(self, *args, num_gist: int, dtype: torch.dtype, use_gist_mask: bool, context_read: ContextRead,
                     curriculum: bool, held_out_reads: BaseReads | None = None, teacher=None,
                     distill_weight: float = 0.0, gist_view: str = "all", **kwargs):
            super().__init__(*args, **kwargs)
            self.teacher, self.distill_weight, self.distilled = teacher, distill_weight, []
            self.gist_view = gist_view
            self.num_gist, self.gist_dtype, self.use_gist_mask = num_gist, dtype, use_gist_mask
            self.context_read, self.curriculum = context_read, curriculum
            self.checks_s = 0.0
            self.held_out_reads = held_out_reads

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.context_read.encoder == "adapted":
                inputs = model_inputs(inputs)
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # Held-out checks (model in eval mode) read their contexts once per run; training records
            # are each read once anyway.
            # The held-out loss stays plain cross-entropy, comparable with and without a teacher.
            teacher = self.teacher if model.training else None
            loss = two_pass_loss(model, inputs, self.num_gist, self.gist_dtype, self.use_gist_mask, num_items_in_batch,
                                 self.context_read.autocast, None if model.training else self.held_out_reads,
                                 teacher, self.distill_weight, self.distilled, self.gist_view)
            if num_items_in_batch is not None and self.args.average_tokens_across_devices:
                # num_items_in_batch counts every rank's answer tokens and DDP averages the ranks' gradients:
                # scale back by the world size, as Trainer.compute_loss does, so W ranks equal one on the same batch.
                loss = loss * self.accelerator.num_processes
            return (loss, {"loss": loss}) if return_outputs else loss

        def log(self, logs, *args, **kwargs):
            if self.distilled and "loss" in logs:   # the state loss, unweighted, since the last log
                logs["distill_state_loss"] = round(sum(self.distilled) / len(self.distilled), 4)
                self.distilled.clear()
            return super().log(logs, *args, **kwargs)

        def evaluate(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return super().evaluate(*args, **kwargs)
            finally:
                self.checks_s += time.perf_counter() - start

        def _get_train_sampler(self, train_dataset=None):
            if not self.curriculum:
                return super()._get_train_sampler(train_dataset)
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    return GistTrainer


def make_held_out_accuracy(documents: list[dict], tokenizer, gist_ids: list[int], use_gist_mask: bool,
                           context_read: ContextRead, resume_from: str | None, reads: BaseReads | None = None,
                           max_new_tokens: int = 12, chat_template: bool = False, gist_view: str = "all",
                           gist_read: str = "all"):
    """A callback that answers the held-out (dev) documents' questions at every evaluation, with the
    inference code itself (compress + store + answer from the gist file, or the control's full-context
    answer; with ``gist_read`` routed, each question from the group holding its key: ``KeyRoutedGist``): the
    accuracy-vs-steps curve, and how often questions about absent facts are declined. The
    curve so far is saved in each checkpoint, so a resumed run keeps its earlier points."""
    from transformers import TrainerCallback

    from gistkv.core.compressor import untrained_compressor
    from gistkv.evaluation.evaluate import evaluate_documents, score_niah
    from gistkv.evaluation.methods import FullContext, Gist
    from gistkv.training.routes import KeyRoutedGist

    saved = Path(resume_from) / VAL_ACCURACY if resume_from else None

    class HeldOutAccuracy(TrainerCallback):
        def __init__(self):
            self.curve: list[dict] = json.loads(saved.read_text())["curve"] if saved and saved.exists() else []

        def on_evaluate(self, args, state, control, model=None, **kwargs):
            if not state.is_world_process_zero:
                return
            peft_model = unwrap(model)
            device = str(next(peft_model.parameters()).device)
            compressor = untrained_compressor(peft_model, tokenizer, len(gist_ids), device, context_read, chat_template,
                                              gist_view)
            compressor.reads = reads
            method = (FullContext(compressor, "tuned") if not use_gist_mask
                      else KeyRoutedGist(compressor) if gist_read == "routed" else Gist(compressor))
            rows = evaluate_documents([method], compressor, documents, max_new_tokens, score_niah, warm_up_first=False)
            present = [row["correct"] for row in rows if row["kind"] == "present"]
            absent = [row["declined"] for row in rows if row["kind"] == "absent"]
            self.curve = [point for point in self.curve if point["step"] != state.global_step]
            self.curve.append({"step": state.global_step, "val_accuracy": round(sum(present) / len(present), 4),
                               "val_absent_declined": round(sum(absent) / len(absent), 4) if absent else None})

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                write_json(Path(args.output_dir) / f"checkpoint-{state.global_step}" / VAL_ACCURACY,
                           {"curve": self.curve})

    return HeldOutAccuracy()
