"""Train a gist compressor (or its plain-LoRA control): LoRA + trainable gist-token rows, HF ``Trainer``, DVCLive.

Only the answer tokens carry loss, and the collator's mask stops every question and answer from
seeing the context, so the loss can only fall if the gist tokens carry what the answers need. The
control trains the same LoRA on the same documents with no gist tokens and ordinary attention.
A run still on the loss plateau at ``train.plateau_check_step`` starts again with another seed
(``gistkv.training.plateau``); checkpoints go to a persisted folder and a re-run resumes (``gistkv.training.checkpoints``).

    python stages/train_gist.py                       # default CPU run
    from gistkv.training.train import train_compressor         # same thing from Python
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gistkv.core.compressor import ADAPTER_DIR, COMPRESSOR_META, POSITION_SCHEME, model_shape
from gistkv.core.gist import GistCollator, add_gist_tokens, view_groups
from gistkv.core.model import load_base, read_base_meta
from gistkv.core.nf4_cpu import keep_trainable
from gistkv.core.prompt import adds_bos
from gistkv.hardware import slow_autocast_warning
from gistkv.io import write_json
from gistkv.training import plateau
from gistkv.training.base_reads import BaseReads
from gistkv.training.checkpoints import prepare_checkpoints, record_elapsed, seconds_before, sort_adapter_config, fingerprint
from gistkv.training.distill import load_teacher
from gistkv.training.peft_fast import fast_trainable_tokens
from gistkv.training.read_only_cache import keep_cache_when_checkpointing
from gistkv.training.train_config import GistParams, TrainParams
from gistkv.training.train_records import documents_read, tokenize_documents
from gistkv.training.trainer import make_gist_trainer, make_held_out_accuracy
from gistkv.training.warm_start import check_same_shape, load_warm_start, warm_start_digest

log = logging.getLogger(__name__)
PLATEAU_FIELDS = ("plateau_check_step", "plateau_loss", "plateau_window", "plateau_restarts")


def num_gist_tokens(gist: GistParams, params: TrainParams) -> int:
    """The control carries no gist tokens: `dvc exp run -S gist.num_tokens=25` retrains gist alone."""
    return gist.num_tokens if params.use_gist_mask else 0


def peft_wrap(model, gist_ids: list[int], params: TrainParams, quantized: bool):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    # Non-reentrant checkpointing (torch's recommendation): replays with the cache passed as a keyword.
    checkpointing = {"use_reentrant": False}
    if quantized:
        keep_trainable(model)    # an eval-mode pass must not switch layers to bitsandbytes' inference-only kernel
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=params.gradient_checkpointing,
                                                gradient_checkpointing_kwargs=checkpointing)
    elif params.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        model.enable_input_require_grads()
    config = LoraConfig(r=params.lora_r, lora_alpha=params.lora_alpha, lora_dropout=params.lora_dropout,
                        target_modules=list(params.target_modules), task_type="CAUSAL_LM",
                        trainable_token_indices={"embed_tokens": list(gist_ids)} if gist_ids else None)
    model = get_peft_model(model, config)
    if params.gradient_checkpointing:
        keep_cache_when_checkpointing(model)    # the tail pass reads the context through a ReadOnlyCache
    fast_trainable_tokens(model)    # same numbers, without peft's vocabulary-sized copies per step
    return model


def step_dtype(base) -> torch.dtype:
    """The dtype of a training step's activations and masks. bfloat16 weights compute in bfloat16, except 4-bit
    models off CUDA: k-bit preparation casts every weight that is not 4-bit to float32 and nothing autocasts
    there (on CUDA the Trainer's bf16 autocast brings the step back to bfloat16)."""
    if base.info["quantization"] == "nf4" and base.info["device"] != "cuda":
        return torch.float32
    return torch.bfloat16 if base.info["dtype"] == "bfloat16" else torch.float32


@dataclass
class Attempt:
    """One seed's training run, as far as it went."""
    trainer: Any             # trainer.model: the peft model it trained
    gist_ids: list[int]
    held_out: Any
    live: Any
    initial_eval: float
    resumed_from: str
    wall_s: float            # this attempt's seconds, over all sessions
    checks_s: float          # of those, in held-out checks
    stuck: float | None = None   # the plateau loss that stopped this attempt at the check; None = it trained on


def train_compressor(base_dir: str | Path, train_documents: list[dict], validation_documents: list[dict],
                     gist: GistParams, params: TrainParams, out_dir: str | Path, checkpoint_dir: str | Path,
                     metrics_dir: str | Path, stop_after_steps: int | None = None) -> dict:
    """Train and save ``out_dir`` (adapter + tokenizer + compressor.json); returns training metrics.

    ``validation_documents`` (dev) give the held-out loss and accuracy curves. ``stop_after_steps`` ends
    the run early (as if killed) after saving that step's checkpoint; tests use it to check resuming.
    """
    from gistkv.stage import seed_everything

    seed_everything(params.seed)
    out_dir, checkpoint_dir, metrics_dir = Path(out_dir), Path(checkpoint_dir), Path(metrics_dir)
    read, longest_read = documents_read(train_documents, params.max_steps, params.num_processes * params.batch_size
                                        * params.gradient_accumulation_steps, params.curriculum)
    if params.curriculum and read < len(train_documents):
        # a length-sorted pass cut short: the longest documents are tokenized, then never trained on
        log.warning("train.max_steps=%d reads %d of %d training documents: in curriculum order none longer than %d "
                    "tokens; raise train.max_steps or lower niah.train.samples_per_length", params.max_steps, read,
                    len(train_documents), longest_read)
    if torch.cuda.is_available():       # the load's peak is its own, whatever this process held before
        torch.cuda.reset_peak_memory_stats()
    base = load_base(base_dir)
    load_peak_gib = cuda_peak_gib(base.info["device"], reset=True)
    if slow := slow_autocast_warning(params.context_autocast, base.info["device"]):
        log.warning("%s", slow)
    # init_from enters as the digest of what it holds (below), not as a path that may be retrained in place; the
    # ladder through that digest too (init_from is then its last rung)
    recipe = {key: value for key, value in dataclasses.asdict(params).items()
              if key not in PLATEAU_FIELDS and key not in ("init_from", "ladder")}
    if params.init_from:
        check_same_shape(params.init_from, {
            "num_gist_tokens": num_gist_tokens(gist, params), "use_gist_mask": params.use_gist_mask,
            "context_encoder": params.context_encoder, "base_weights_sha256": base.info["weights_sha256"],
            "lora": params.lora_record})
    resume_from = prepare_checkpoints(checkpoint_dir, fingerprint(
        recipe, num_gist_tokens(gist, params), read_base_meta(base_dir), base.info,
        hashlib.sha256(json.dumps([train_documents, validation_documents], sort_keys=True).encode()).hexdigest(),
        # reads that start with BOS are another recipe (added only then: earlier checkpoints keep their fingerprint)
        *(["reads start with BOS"] if adds_bos(base.tokenizer) else []),
        *(["reads are chat turns"] if base.info["chat_template"] else []),
        *([f"warm start {warm_start_digest(params.init_from)}"] if params.init_from else [])))
    restarts = plateau.read_restarts(checkpoint_dir, params)
    if restarts is None:
        log.info("checkpoints in %s come from restarts these plateau settings would not make; starting clean",
                 checkpoint_dir)
        plateau.drop_checkpoints(checkpoint_dir)
        restarts, resume_from = [], None
    while True:
        seed = plateau.attempt_seed(params.seed, len(restarts))
        if restarts:    # a new LoRA init, on a fresh copy of the base (the last attempt's model freed first)
            run = base = None
            release_memory()
            seed_everything(seed)
            base = load_base(base_dir)
            cuda_peak_gib(base.info["device"], reset=True)      # "train" is then the peak of the last attempt
        # a warm start (init_from, every rung of a ladder after the first) restarts from the same adapter: another
        # seed would replay the same run, so the plateau check is for fresh LoRAs only
        armed = len(restarts) < params.plateau_restarts and not params.init_from
        stuck = plateau.stuck_on_resume(resume_from, params) if armed else None
        if stuck is not None:   # resumed past the check: decided from the checkpoint's logged losses, no training
            spent_s, spent_checks_s = seconds_before(resume_from)
        else:
            run = train_attempt(base, base_dir, train_documents, validation_documents, num_gist_tokens(gist, params),
                                dataclasses.replace(params, seed=seed), checkpoint_dir, metrics_dir, resume_from,
                                stop_after_steps, armed)
            if run.stuck is None:
                break
            stuck, spent_s, spent_checks_s = run.stuck, run.wall_s, run.checks_s
        log.warning("seed %d is on the loss plateau at step %d (%.3f > %s): restarting with seed %d", seed,
                    params.plateau_check_step, stuck, params.plateau_loss,
                    plateau.attempt_seed(params.seed, len(restarts) + 1))
        restarts = plateau.record_restart(checkpoint_dir, restarts, {
            "seed": seed, "check_step": params.plateau_check_step, "window": params.plateau_window,
            "loss": stuck, "train_s": round(spent_s, 3), "checks_s": round(spent_checks_s, 3)})
        resume_from = None

    trainer, model, tokenizer = run.trainer, run.trainer.model, base.tokenizer
    if stop_after_steps is not None and trainer.state.global_step < params.max_steps:
        return {"stopped_at_step": trainer.state.global_step}
    evaluated = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    last_step_evaluated = evaluated and evaluated[-1]["step"] == trainer.state.global_step
    final_eval = evaluated[-1]["eval_loss"] if last_step_evaluated else trainer.evaluate()["eval_loss"]
    run.live.end()
    if not trainer.is_world_process_zero():
        return {}
    # Given-up attempts count: their time is part of what training this compressor cost.
    wall_s = sum(entry["train_s"] for entry in restarts) + run.wall_s
    checks_s = sum(entry["checks_s"] for entry in restarts) + run.checks_s
    history = [{"step": 0, "eval_loss": run.initial_eval}] + list(trainer.state.log_history) + run.held_out.curve
    tokens_seen = int(trainer.state.num_input_tokens_seen or 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The gist rows travel as trainable-token deltas; never dump the whole (resized) embedding matrix.
    model.save_pretrained(str(out_dir / ADAPTER_DIR), save_embedding_layers=False)
    sort_adapter_config(out_dir / ADAPTER_DIR / "adapter_config.json")
    tokenizer.save_pretrained(str(out_dir))
    write_json(out_dir / COMPRESSOR_META, {
        "base_model": base.info["model_id"], "base_weights_sha256": base.info["weights_sha256"],
        "base_dir": str(base_dir), "num_gist_tokens": len(run.gist_ids), "gist_token_ids": run.gist_ids,
        "position_scheme": POSITION_SCHEME, "dtype": base.info["dtype"], "device": base.info["device"],
        "quantization": base.info["quantization"], "use_gist_mask": params.use_gist_mask,
        "gist_view": params.gist_view, "gist_read": params.gist_read,
        "context_encoder": params.context_encoder, "context_autocast": params.context_autocast,
        "trained_context_tokens": longest_read,      # the longest document training read, not the longest it held
        "adds_bos": adds_bos(tokenizer),     # reads began with BOS in training; so must every later read
        "chat_template": base.info["chat_template"],     # and were (or were not) turns of the chat template,
        "prompt_layout": base.layout.record(),           # with these ids around every document and query
        "lora": params.lora_record,
        **model_shape(model.config)})
    # Mean of the logged losses rather than Trainer's own average, which covers only this session.
    losses = [value for _, value in curve(history, "loss")]
    return {"train_loss": round(sum(losses) / len(losses), 4) if losses else float("nan"),
            "eval_loss_initial": round(float(run.initial_eval), 4),
            "eval_loss_final": round(float(final_eval), 4), "steps": trainer.state.global_step,
            "seed": seed,    # the attempt that trained: train.seed unless the plateau guard restarted
            "plateau_restarts": [{key: entry[key] for key in ("seed", "loss", "train_s")} for entry in restarts],
            "train_wall_s": round(wall_s, 1), "train_tokens_seen": tokens_seen,
            "documents_read": read, "documents": len(train_documents), "longest_context_read": longest_read,
            # of train_wall_s: the held-out loss/accuracy checks every eval_steps, and the rest (the training itself)
            "held_out_checks_s": round(checks_s, 1), "train_wall_s_without_checks": round(wall_s - checks_s, 1),
            "train_tokens_per_s": round(tokens_seen / run.wall_s, 1) if run.wall_s > 0 else 0.0,
            "device": base.info["device"], "dtype": base.info["dtype"], "quantization": base.info["quantization"],
            "num_processes": params.num_processes, "torch_threads": torch.get_num_threads(),
            # peak GPU memory of this process: loading the base (4-bit: while quantizing), then training
            # (allocated tensors; "train_reserved" adds what PyTorch's allocator holds besides)
            "cuda_peak_gib": {"load": load_peak_gib, "train": cuda_peak_gib(base.info["device"]),
                              "train_reserved": cuda_peak_gib(base.info["device"], reserved=True)},
            "resumed_from": run.resumed_from, "history": history}


def cuda_peak_gib(device: str, reset: bool = False, reserved: bool = False) -> float | None:
    """The peak of GPU memory allocated (or, with RESERVED, held by PyTorch's allocator) since the last reset, in
    GiB; None off CUDA. RESET starts a new peak."""
    if device != "cuda":
        return None
    peak = round((torch.cuda.max_memory_reserved() if reserved else torch.cuda.max_memory_allocated()) / (1 << 30), 2)
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return peak


def release_memory() -> None:
    """Free what nothing refers to any more, on the GPU too (a restart must not hold two models)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def train_attempt(base, base_dir: str | Path, train_documents: list[dict], validation_documents: list[dict], num_gist: int,
                  params: TrainParams, checkpoint_dir: Path, metrics_dir: Path, resume_from: str | None,
                  stop_after_steps: int | None, armed: bool) -> Attempt:
    """Train one seed (``params.seed``) from ``resume_from`` or from scratch; with ``armed``, stop
    early if it is still on the loss plateau at the check step."""
    from dvclive import Live
    from transformers import TrainerCallback, TrainingArguments
    from transformers.integrations import DVCLiveCallback

    model, tokenizer = base.model, base.tokenizer
    gist_ids = add_gist_tokens(tokenizer, model, num_gist)
    model = peft_wrap(model, gist_ids, params, quantized=base.info["quantization"] == "nf4")
    if params.init_from and resume_from is None:    # a resumed run's checkpoint already holds the weights
        log.info("warm start: %d adapter tensors from %s", load_warm_start(model, params.init_from, params.init_tile),
                 params.init_from)
    model.train()
    dtype = step_dtype(base)

    routed = view_groups(params.gist_view, num_gist) if params.gist_read == "routed" else None
    validation = tokenize_documents(validation_documents, base.layout, routed)
    training = tokenize_documents(train_documents, base.layout, routed)
    if params.curriculum:
        # Short contexts first: the copy-through-the-gist skill is learned where it is easy, then stretched.
        training = sorted(training, key=lambda example: len(example["context_ids"]))

    on_cuda = base.info["device"] == "cuda"
    args = TrainingArguments(
        output_dir=str(checkpoint_dir), max_steps=params.max_steps, per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.batch_size, gradient_accumulation_steps=params.gradient_accumulation_steps,
        learning_rate=params.learning_rate, warmup_steps=params.warmup_steps, weight_decay=params.weight_decay,
        lr_scheduler_type=params.lr_scheduler, lr_scheduler_kwargs=params.lr_scheduler_kwargs,
        logging_steps=params.logging_steps, eval_strategy="steps",
        eval_steps=params.eval_steps, save_strategy="steps", save_steps=params.save_steps, save_total_limit=2,
        seed=params.seed, data_seed=params.seed, report_to="none", remove_unused_columns=False,
        use_cpu=not on_cuda, bf16=on_cuda and dtype == torch.bfloat16, dataloader_num_workers=0,
        include_num_input_tokens_seen=True, label_names=["labels"], disable_tqdm=False, prediction_loss_only=True,
        ddp_find_unused_parameters=False if params.num_processes > 1 else None)

    class StopAfter(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:     # so a resumed run reports the whole training time
                record_elapsed(checkpoint_dir / f"checkpoint-{state.global_step}",
                               before_s + time.perf_counter() - start, checks_before_s + trainer.checks_s)
            if stop_after_steps is not None and state.global_step >= stop_after_steps:
                control.should_training_stop = True

    live = Live(dir=str(metrics_dir / "live"), save_dvc_exp=False, dvcyaml=None, resume=resume_from is not None,
                report=None)
    reads = BaseReads() if params.context_read.encoder == "base" else None   # the checks' contexts, read once
    held_out = make_held_out_accuracy(validation_documents, tokenizer, gist_ids, params.use_gist_mask,
                                      params.context_read, resume_from, reads,
                                      chat_template=base.info["chat_template"], gist_view=params.gist_view,
                                      gist_read=params.gist_read)
    guard = plateau.make_plateau_check(params, armed)
    teacher = load_teacher(params.distill_from, base_dir, base.info["device"]) if params.distill_from else None
    trainer = make_gist_trainer()(
        model=model, args=args, train_dataset=training, eval_dataset=validation,
        data_collator=GistCollator(gist_ids, tokenizer.pad_token_id, dtype, params.use_gist_mask),
        callbacks=[DVCLiveCallback(live=live), StopAfter(), held_out, guard], num_gist=len(gist_ids), dtype=dtype,
        use_gist_mask=params.use_gist_mask, context_read=params.context_read, curriculum=params.curriculum,
        held_out_reads=reads, teacher=teacher, distill_weight=params.distill_weight,
        gist_view=params.gist_view)
    before_s, checks_before_s = seconds_before(resume_from)
    run = Attempt(trainer, gist_ids, held_out, live, float("nan"), Path(resume_from).name if resume_from else "",
                  before_s, checks_before_s)
    start = time.perf_counter()
    initial_path = checkpoint_dir / "initial_eval.json"
    if resume_from is None:
        write_json(initial_path, {"eval_loss": trainer.evaluate()["eval_loss"]})
    run.initial_eval = json.loads(initial_path.read_text())["eval_loss"] if initial_path.exists() else float("nan")
    trainer.train(resume_from_checkpoint=resume_from)
    run.wall_s = before_s + time.perf_counter() - start
    run.checks_s = checks_before_s + trainer.checks_s
    run.stuck = guard.stuck
    if run.stuck is not None:
        live.end()
    return run


def curve(history: list[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of one logged quantity, one per step (the last logged value wins)."""
    by_step = {entry["step"]: entry[key] for entry in history if key in entry}
    return sorted(by_step.items())
