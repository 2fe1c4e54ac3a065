"""Train a gist compressor: LoRA + trainable gist-token embeddings, HF ``Trainer``, DVCLive.

Only the answer tokens carry loss, and the collator's 4-D mask stops the question and answer
from seeing the context, so the loss can only fall if the gist tokens carry the needle.
Gist embeddings are trained with peft's ``trainable_token_indices`` (just N rows), not by
saving the whole embedding and LM head. Checkpoints go to a persisted folder; a re-run with
the same inputs resumes from the last one, a run with other inputs starts clean.

    python stages/train_gist.py                       # default CPU run
    from gistkv.train import train_compressor         # same thing from Python
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gistkv import plateau
from gistkv.base_reads import BaseReads
from gistkv.compressor import ADAPTER_DIR, COMPRESSOR_META, POSITION_SCHEME, ContextRead, model_shape
from gistkv.errors import GistkvError
from gistkv.gist import GistCollator, add_gist_tokens
from gistkv.hardware import slow_autocast_warning
from gistkv.io import read_jsonl, write_json
from gistkv.model import load_base, read_base_meta
from gistkv.params import require
from gistkv.peft_fast import fast_trainable_tokens
from gistkv.prompt import answer_text, encode, query_text
from gistkv.trainer import make_gist_trainer, make_held_out_accuracy

log = logging.getLogger(__name__)
FINGERPRINT = "gistkv_fingerprint.json"
ELAPSED = "gistkv_elapsed.json"     # in each checkpoint: seconds up to it (all; held-out checks), summed over resumes


@dataclass
class GistParams:
    num_tokens: int

    def validate(self, where: str) -> None:
        require(1 <= self.num_tokens <= 512, f"{where}.num_tokens", f"must be within 1..512, got {self.num_tokens}.")


@dataclass
class TrainParams:
    seed: int
    langs: list[str]
    max_steps: int
    batch_size: int
    gradient_accumulation_steps: int
    learning_rate: float
    lr_scheduler: str            # transformers scheduler name: constant_with_warmup, cosine, linear, ...
    warmup_steps: int
    weight_decay: float
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: list[str]
    context_encoder: str         # "base": the context is read by the frozen base model (no backward through it)
    curriculum: bool             # true: train short contexts first (order by length), else shuffled
    validation_samples: int
    eval_steps: int
    logging_steps: int
    save_steps: int
    gradient_checkpointing: bool
    num_processes: int
    lr_scheduler_kwargs: dict[str, Any] = field(default_factory=dict)   # e.g. warmup_stable_decay's num_decay_steps
    answer_position_probes: bool = False   # also ask, from the same gist, for each answer character by position
    use_gist_mask: bool = True   # False = the plain-LoRA control (stages/train_gist.py --control)
    context_autocast: str = "none"   # "bfloat16": the base model reads the context under autocast (context_encoder base)
    plateau_check_step: int = 0      # restart a run still on the loss plateau at this step (0 = never; gistkv.plateau)
    plateau_loss: float = 1.2        # ... i.e. whose mean training loss over the window ending there is above this
    plateau_window: int = 50
    plateau_restarts: int = 2        # at most this many restarts; the last attempt trains on whatever it reaches

    def validate(self, where: str) -> None:
        require(self.max_steps > 0, f"{where}.max_steps", "must be positive.")
        require(self.batch_size > 0, f"{where}.batch_size", "must be positive.")
        require(self.learning_rate > 0, f"{where}.learning_rate", "must be positive.")
        require(bool(self.target_modules), f"{where}.target_modules", "must name at least one module.")
        require(self.num_processes >= 1, f"{where}.num_processes", "must be >= 1.")
        require(0 <= self.plateau_check_step < self.max_steps, f"{where}.plateau_check_step",
                f"must be 0 (off) or a step before max_steps={self.max_steps}, got {self.plateau_check_step}.")
        require(self.plateau_check_step % self.logging_steps == 0, f"{where}.plateau_check_step",
                f"must be a multiple of logging_steps={self.logging_steps} (the check reads logged losses).")
        require(self.plateau_window >= self.logging_steps, f"{where}.plateau_window",
                f"must cover at least one logged loss (logging_steps={self.logging_steps}).")
        require(self.plateau_restarts >= 0, f"{where}.plateau_restarts", "must be >= 0.")
        if unknown := self.context_read.unknown_value():
            key, value, allowed = unknown
            raise GistkvError(f"{where}.{key}: must be one of {allowed}, got {value!r}.")
        # The adapted encoder reads context and gist in one pass: there is no separate context read to cast.
        require(self.context_autocast == "none" or self.context_encoder == "base", f"{where}.context_autocast",
                f"{self.context_autocast!r} needs context_encoder: base, got {self.context_encoder!r}.")

    @property
    def context_read(self) -> ContextRead:
        return ContextRead(self.context_encoder, self.context_autocast)


def position_probes(record: dict, tokenizer) -> list[tuple[list[int], list[int]]]:
    """One extra question block per answer character: "<question>\n<answer prefix> [4]" -> " 9".

    A training signal for the order of what the gist tokens hold: the wrong answers of gist
    runs are mostly the right digits in a slightly wrong order (86196 -> 86166), and asking for
    a digit by its index cannot be answered by chaining "which digit came after the last one".
    The probes share the gist tokens of the main question (one context read, one gist pass).
    """
    return [(encode(tokenizer, query_text(record["question"], f"{record['answer_prefix']} [{index}]")),
             encode(tokenizer, answer_text(character)))
            for index, character in enumerate(record["answer"], start=1)]


def tokenize_records(records: list[dict], tokenizer, probes: bool = False) -> list[dict]:
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return [{"context_ids": encode(tokenizer, record["context"]),
             "query_ids": encode(tokenizer, query_text(record["question"], record["answer_prefix"])),
             "answer_ids": encode(tokenizer, answer_text(record["answer"])) + eos,
             **({"probes": position_probes(record, tokenizer)} if probes else {})} for record in records]


def training_records(niah_dir: str | Path, params: TrainParams) -> list[dict]:
    """The NIAH train splits of ``params.langs``, mixed in the seed's order (its first
    ``validation_samples`` are held out; with the curriculum the rest is then sorted by length)."""
    records = [record for lang in params.langs for record in read_jsonl(Path(niah_dir) / lang / "train.jsonl")]
    random.Random(params.seed).shuffle(records)
    return records


# Switches added after the first recipe, with their "off" value.
LATER_SWITCHES = {"answer_position_probes": False, "context_autocast": "none"}
# The plateau guard's settings: its decisions are re-made from the logged losses on resume (gistkv.plateau).
PLATEAU_FIELDS = ("plateau_check_step", "plateau_loss", "plateau_window", "plateau_restarts")


def recipe_fingerprint_fields(params: TrainParams) -> dict:
    """The training params that define a run for checkpoint reuse. Switches added later are left
    out while off, so checkpoints of the recipe they extend stay valid; the plateau guard is left
    out always, because resuming re-checks what it decided."""
    fields = dataclasses.asdict(params)
    for name, off in LATER_SWITCHES.items():
        if fields[name] == off:
            del fields[name]
    for name in PLATEAU_FIELDS:
        del fields[name]
    return fields


def fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def prepare_checkpoints(checkpoint_dir: Path, print_: str) -> str | None:
    """Keep checkpoints only if they come from the same inputs; return the one to resume from."""
    from transformers.trainer_utils import get_last_checkpoint

    marker = checkpoint_dir / FINGERPRINT
    if checkpoint_dir.exists():
        same = marker.exists() and json.loads(marker.read_text())["fingerprint"] == print_
        if not same:
            log.info("checkpoints in %s come from other inputs; starting clean", checkpoint_dir)
            shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"fingerprint": print_})
    return get_last_checkpoint(str(checkpoint_dir))


def sort_adapter_config(path: Path) -> None:
    """peft writes target_modules from a set, in an order that changes with Python's string hashing;
    sorted, the same params give the same adapter bytes (and the same dvc.lock hash)."""
    config = json.loads(path.read_text(encoding="utf-8"))
    for key in ("target_modules", "modules_to_save"):         # sets in peft; order carries no meaning
        if isinstance(config.get(key), list):
            config[key] = sorted(config[key])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def seconds_before(checkpoint: str | None) -> tuple[float, float | None, str]:
    """Seconds spent before resuming from ``checkpoint`` — in all, and of those in held-out checks —
    and how they are known.

    Exact from the checkpoint's own record; for a checkpoint without one, estimated from the
    ``train_runtime`` each earlier session logged (its last value per session; the steps after a
    session's last log are missing from the estimate). The checks' share is None where the
    checkpoint did not record it (written before it was measured).
    """
    if checkpoint is None:
        return 0.0, 0.0, "measured"
    record = Path(checkpoint) / ELAPSED
    if record.exists():
        elapsed = json.loads(record.read_text())
        checks_s = elapsed.get("checks_s")
        return float(elapsed["train_s"]), None if checks_s is None else float(checks_s), "measured"
    state = Path(checkpoint) / "trainer_state.json"
    history = json.loads(state.read_text())["log_history"] if state.exists() else []
    total, last = 0.0, None
    for entry in history:
        if "train_runtime" not in entry:
            continue
        runtime = float(entry["train_runtime"])
        total += runtime - last if last is not None and runtime >= last else runtime   # a drop = a new session
        last = runtime
    return total, None, "estimated from logged runtimes"


def peft_wrap(model, gist_ids: list[int], params: TrainParams, quantized: bool):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=params.gradient_checkpointing)
    elif params.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    config = LoraConfig(r=params.lora_r, lora_alpha=params.lora_alpha, lora_dropout=params.lora_dropout,
                        target_modules=list(params.target_modules), task_type="CAUSAL_LM",
                        trainable_token_indices={"embed_tokens": list(gist_ids)})
    model = get_peft_model(model, config)
    fast_trainable_tokens(model)    # same numbers, without peft's vocabulary-sized copies per step
    return model


def step_dtype(base) -> torch.dtype:
    """The dtype of a training step's gist/question pass and its masks: bfloat16 for bfloat16 or 4-bit weights."""
    return torch.bfloat16 if base.info["quantization"] == "nf4" or base.info["dtype"] == "bfloat16" else torch.float32


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
    checks_s: float | None   # of those, in held-out checks (None: a resumed checkpoint did not record them)
    wall_source: str
    stuck: float | None = None   # the plateau loss that stopped this attempt at the check; None = it trained on


def train_compressor(base_dir: str | Path, train_records: list[dict], gist: GistParams, params: TrainParams,
                     out_dir: str | Path, checkpoint_dir: str | Path, metrics_dir: str | Path,
                     stop_after_steps: int | None = None) -> dict:
    """Train and save ``out_dir`` (adapter + tokenizer + compressor.json); returns training metrics.

    A run still on the loss plateau at ``params.plateau_check_step`` starts again with another
    seed (``gistkv.plateau``). ``stop_after_steps`` ends the run early (as if killed) after saving
    that step's checkpoint; tests use it to check that a re-run resumes.
    """
    from gistkv.stage import seed_everything

    seed_everything(params.seed)
    out_dir, checkpoint_dir, metrics_dir = Path(out_dir), Path(checkpoint_dir), Path(metrics_dir)
    if len(train_records) <= params.validation_samples:
        raise GistkvError(f"train: {len(train_records)} training records but train.validation_samples="
                          f"{params.validation_samples}; generate more (niah.splits.train.samples).")
    base = load_base(base_dir)
    if slow := slow_autocast_warning(params.context_autocast, base.info["device"]):
        log.warning("%s", slow)
    resume_from = prepare_checkpoints(checkpoint_dir, fingerprint(
        recipe_fingerprint_fields(params), dataclasses.asdict(gist), read_base_meta(base_dir), base.info,
        hashlib.sha256(json.dumps(train_records, sort_keys=True).encode()).hexdigest()))
    restarts = plateau.read_restarts(checkpoint_dir, params)
    if restarts is None:
        log.info("checkpoints in %s come from restarts these plateau settings would not make; starting clean",
                 checkpoint_dir)
        plateau.drop_checkpoints(checkpoint_dir)
        restarts, resume_from = [], None
    while True:
        seed = plateau.attempt_seed(params.seed, len(restarts))
        if restarts:    # a new LoRA init; the first attempt trains the model loaded above, as before the guard
            seed_everything(seed)
            base = load_base(base_dir)
        armed = len(restarts) < params.plateau_restarts
        stuck = plateau.stuck_on_resume(resume_from, params) if armed else None
        if stuck is not None:   # resumed past the check: decided from the checkpoint's logged losses, no training
            spent_s, spent_checks_s, _ = seconds_before(resume_from)
        else:
            run = train_attempt(base, train_records, gist, dataclasses.replace(params, seed=seed), checkpoint_dir,
                                metrics_dir, resume_from, stop_after_steps, armed)
            if run.stuck is None:
                break
            stuck, spent_s, spent_checks_s = run.stuck, run.wall_s, run.checks_s
        log.warning("seed %d is on the loss plateau at step %d (%.3f > %s): restarting with seed %d", seed,
                    params.plateau_check_step, stuck, params.plateau_loss,
                    plateau.attempt_seed(params.seed, len(restarts) + 1))
        restarts = plateau.record_restart(checkpoint_dir, restarts, {
            "seed": seed, "check_step": params.plateau_check_step, "window": params.plateau_window,
            "loss": stuck, "train_s": round(spent_s, 3),
            "checks_s": None if spent_checks_s is None else round(spent_checks_s, 3)})
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
    earlier_checks = [entry["checks_s"] for entry in restarts]
    checks_s = None if run.checks_s is None or None in earlier_checks else sum(earlier_checks) + run.checks_s

    history = [{"step": 0, "eval_loss": run.initial_eval}] + list(trainer.state.log_history) + run.held_out.curve
    tokens_seen = int(trainer.state.num_input_tokens_seen or 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The gist rows travel as trainable-token deltas; never dump the whole (resized) embedding matrix.
    model.save_pretrained(str(out_dir / ADAPTER_DIR), save_embedding_layers=False)
    sort_adapter_config(out_dir / ADAPTER_DIR / "adapter_config.json")
    tokenizer.save_pretrained(str(out_dir))
    write_json(out_dir / COMPRESSOR_META, {
        "base_model": base.info["model_id"], "base_weights_sha256": base.info["weights_sha256"],
        "base_dir": str(base_dir), "num_gist_tokens": gist.num_tokens, "gist_token_ids": run.gist_ids,
        "position_scheme": POSITION_SCHEME, "dtype": base.info["dtype"], "device": base.info["device"],
        "quantization": base.info["quantization"], "use_gist_mask": params.use_gist_mask,
        "context_encoder": params.context_encoder, "context_autocast": params.context_autocast,
        "lora": {"r": params.lora_r, "alpha": params.lora_alpha, "target_modules": list(params.target_modules)},
        **model_shape(model.config)})
    # Mean of the logged losses rather than Trainer's own average, which covers only this session.
    losses = [value for _, value in curve(history, "loss")]
    return {"train_loss": round(sum(losses) / len(losses), 4) if losses else float("nan"),
            "eval_loss_initial": round(float(run.initial_eval), 4),
            "eval_loss_final": round(float(final_eval), 4), "steps": trainer.state.global_step,
            "seed": seed,    # the attempt that trained: train.seed unless the plateau guard restarted
            "plateau_restarts": [{key: entry[key] for key in ("seed", "loss", "train_s")} for entry in restarts],
            "train_wall_s": round(wall_s, 1), "train_wall_s_source": run.wall_source, "train_tokens_seen": tokens_seen,
            # of train_wall_s: the held-out loss/accuracy checks every eval_steps, and the rest (the training itself)
            # (null when resumed from a checkpoint that did not record its checks)
            "held_out_checks_s": None if checks_s is None else round(checks_s, 1),
            "train_wall_s_without_checks": None if checks_s is None else round(wall_s - checks_s, 1),
            "train_tokens_per_s": round(tokens_seen / run.wall_s, 1) if run.wall_s > 0 else 0.0,
            "device": base.info["device"], "dtype": base.info["dtype"], "quantization": base.info["quantization"],
            "num_processes": params.num_processes, "torch_threads": torch.get_num_threads(),
            "resumed_from": run.resumed_from, "history": history}


def train_attempt(base, train_records: list[dict], gist: GistParams, params: TrainParams, checkpoint_dir: Path,
                  metrics_dir: Path, resume_from: str | None, stop_after_steps: int | None, armed: bool) -> Attempt:
    """Train one seed (``params.seed``) from ``resume_from`` or from scratch; with ``armed``, stop
    early if it is still on the loss plateau at the check step."""
    from dvclive import Live
    from transformers import TrainerCallback, TrainingArguments
    from transformers.integrations import DVCLiveCallback

    model, tokenizer = base.model, base.tokenizer
    gist_ids = add_gist_tokens(tokenizer, model, gist.num_tokens)
    quantized = base.info["quantization"] == "nf4"
    model = peft_wrap(model, gist_ids, params, quantized)
    model.train()
    dtype = step_dtype(base)

    # The held-out loss stays the main question's alone, comparable across recipes.
    validation = tokenize_records(train_records[: params.validation_samples], tokenizer)
    training = tokenize_records(train_records[params.validation_samples:], tokenizer, params.answer_position_probes)
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
                elapsed = {"train_s": round(before_s + time.perf_counter() - start, 3)}
                if checks_before_s is not None:
                    elapsed["checks_s"] = round(checks_before_s + trainer.checks_s, 3)
                write_json(checkpoint_dir / f"checkpoint-{state.global_step}" / ELAPSED, elapsed)
            if stop_after_steps is not None and state.global_step >= stop_after_steps:
                control.should_training_stop = True

    live = Live(dir=str(metrics_dir / "live"), save_dvc_exp=False, dvcyaml=None, resume=resume_from is not None,
                report=None)
    reads = BaseReads() if params.context_read.encoder == "base" else None   # the checks' contexts, read once
    held_out = make_held_out_accuracy(train_records[: params.validation_samples], tokenizer, gist_ids,
                                      params.use_gist_mask, params.context_read, resume_from, reads)
    guard = plateau.make_plateau_check(params, armed)
    trainer = make_gist_trainer()(
        model=model, args=args, train_dataset=training, eval_dataset=validation,
        data_collator=GistCollator(gist_ids, tokenizer.pad_token_id, dtype, params.use_gist_mask),
        callbacks=[DVCLiveCallback(live=live), StopAfter(), held_out, guard], num_gist=len(gist_ids), dtype=dtype,
        use_gist_mask=params.use_gist_mask, context_read=params.context_read, curriculum=params.curriculum,
        held_out_reads=reads)
    before_s, checks_before_s, wall_source = seconds_before(resume_from)
    run = Attempt(trainer, gist_ids, held_out, live, float("nan"), Path(resume_from).name if resume_from else "",
                  before_s, checks_before_s, wall_source)
    start = time.perf_counter()
    initial_path = checkpoint_dir / "initial_eval.json"
    if resume_from is None:
        write_json(initial_path, {"eval_loss": trainer.evaluate()["eval_loss"]})
    run.initial_eval = json.loads(initial_path.read_text())["eval_loss"] if initial_path.exists() else float("nan")
    trainer.train(resume_from_checkpoint=resume_from)
    run.wall_s = before_s + time.perf_counter() - start
    run.checks_s = None if checks_before_s is None else checks_before_s + trainer.checks_s
    run.stuck = guard.stuck
    if run.stuck is not None:
        live.end()
    return run


def curve(history: list[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of one logged quantity, one per step (the last logged value wins)."""
    by_step = {entry["step"]: entry[key] for entry in history if key in entry}
    return sorted(by_step.items())

