"""The ``gist`` and ``train`` sections of params.yaml, typed and checked before any model loads.

    from gistkv.params import load_section
    from gistkv.training.train_config import GistParams, TrainParams
    train = load_section("params.yaml", "train", TrainParams)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from gistkv.core.compressor import ContextRead
from gistkv.core.gist import GIST_VIEWS, gist_read_problem, is_gist_view
from gistkv.errors import GistkvError
from gistkv.params import from_mapping, require

# transformers' scheduler names this project has run with; a typo should fail here, not after the model loads.
LR_SCHEDULERS = ("constant", "constant_with_warmup", "cosine", "linear", "warmup_stable_decay")
# What a rung of the ladder may not change: the adapter's shape and read (a warm start needs them equal), and how
# the run is laid out; init_from and ladder are set by the ladder itself.
# validation_samples too: every rung is checked on the main run's dev documents.
FIXED_ON_THE_LADDER = ("lora_r", "lora_alpha", "target_modules", "use_gist_mask", "context_encoder", "context_autocast",
                       "gist_view", "gist_read", "langs", "num_processes", "validation_samples", "init_from", "ladder")
# The projections of a Llama-family decoder layer (SmolLM2 and Llama-3 name them alike) that LoRA may adapt.
TargetModule = Literal["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class GistParams:
    num_tokens: int

    def validate(self, where: str) -> None:
        require(1 <= self.num_tokens <= 512, f"{where}.num_tokens", f"must be within 1..512, got {self.num_tokens}.")


@dataclass
class TrainParams:
    seed: int
    langs: list[str]             # NIAH train splits mixed into one training set (and dev records for the checks)
    max_steps: int
    batch_size: int
    gradient_accumulation_steps: int
    learning_rate: float
    lr_scheduler: str            # one of LR_SCHEDULERS
    warmup_steps: int
    weight_decay: float
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: list[TargetModule]
    context_encoder: str         # "base": the context is read by the frozen base model (no backward through it)
    curriculum: bool             # true: train short contexts first (order by length), else shuffled
    validation_samples: int      # dev documents for the held-out loss and accuracy checks
    eval_steps: int
    logging_steps: int
    save_steps: int
    gradient_checkpointing: bool
    num_processes: int
    lr_scheduler_kwargs: dict[str, Any] = field(default_factory=dict)   # e.g. warmup_stable_decay's num_decay_steps
    use_gist_mask: bool = True   # False = the plain-LoRA control (stages/train_gist.py --control)
    context_autocast: str = "none"   # "bfloat16": the base model reads the context under autocast (context_encoder base)
    plateau_check_step: int = 0      # restart a run still on the loss plateau at this step (0 = never; gistkv.training.plateau)
    plateau_loss: float = 1.2        # ... i.e. whose mean training loss over the window ending there is above this
    plateau_window: int = 50
    plateau_restarts: int = 2        # at most this many restarts; the last attempt trains on whatever it reaches
    distill_from: str = ""           # a plain-LoRA control's folder (models/lora): its hidden states teach the gist's
    distill_weight: float = 1.0      # question/answer tokens (gistkv.training.distill), at this weight; "" = off
    gist_view: str = "all"           # what a gist token sees of the context: "all", or its own chunk ("chunks";
                                     # gistkv.core.gist.gist_view_blocked)
    gist_read: str = "all"           # what an answer reads of a groups:G gist: "all" groups, or "routed": only the
                                     # group whose chunk holds its key (gistkv.training.routes)
    init_from: str = ""              # a trained compressor's folder whose adapter seeds this run (gistkv.training.
                                     # warm_start); "" = a fresh LoRA
    init_tile: bool = False          # a run with more gist tokens than its seed: repeat the seed's rows (each group of
                                     # a groups:G view starts as the seed's gist) instead of fresh rows after them
    ladder: list[dict[str, Any]] = field(default_factory=list)   # one entry per rung of niah.ladder: the keys
                                     # above that rung changes (e.g. max_steps); each rung starts from the last
                                     # and this run from the last rung (gistkv.training.ladder)

    def validate(self, where: str) -> None:
        for name in ("max_steps", "batch_size", "gradient_accumulation_steps", "lora_r", "lora_alpha", "logging_steps",
                     "eval_steps", "save_steps", "num_processes", "validation_samples"):
            require(getattr(self, name) >= 1, f"{where}.{name}", f"must be >= 1, got {getattr(self, name)}.")
        require(self.learning_rate > 0, f"{where}.learning_rate", "must be positive.")
        require(self.warmup_steps >= 0 and self.weight_decay >= 0, f"{where}.warmup_steps",
                "warmup_steps and weight_decay must be >= 0.")
        require(0 <= self.lora_dropout < 1, f"{where}.lora_dropout", "must be within [0, 1).")
        require(self.lr_scheduler in LR_SCHEDULERS, f"{where}.lr_scheduler",
                f"must be one of {', '.join(LR_SCHEDULERS)}, got {self.lr_scheduler!r}.")
        # transformers takes a decay longer than the run without a word: the rate would start mid-decay
        decay_steps = self.lr_scheduler_kwargs.get("num_decay_steps", 0)
        require(self.lr_scheduler != "warmup_stable_decay" or self.warmup_steps + decay_steps <= self.max_steps,
                f"{where}.lr_scheduler_kwargs.num_decay_steps", f"warmup_steps + num_decay_steps ({self.warmup_steps} "
                f"+ {decay_steps}) must fit in max_steps={self.max_steps}.")
        require(bool(self.target_modules), f"{where}.target_modules", "must name at least one module.")
        require(bool(self.langs), f"{where}.langs", "must name at least one language.")
        require(0 <= self.plateau_check_step < self.max_steps, f"{where}.plateau_check_step",
                f"must be 0 (off) or a step before max_steps={self.max_steps}, got {self.plateau_check_step}.")
        require(self.plateau_check_step % self.logging_steps == 0, f"{where}.plateau_check_step",
                f"must be a multiple of logging_steps={self.logging_steps} (the check reads logged losses).")
        require(self.plateau_window >= self.logging_steps, f"{where}.plateau_window",
                f"must cover at least one logged loss (logging_steps={self.logging_steps}).")
        require(self.plateau_restarts >= 0, f"{where}.plateau_restarts", "must be >= 0.")
        if self.distill_from:
            require(self.use_gist_mask and self.context_encoder == "base", f"{where}.distill_from",
                    "needs the gist mask and context_encoder: base (the control teaches the gist, from a shared read).")
            require(self.distill_weight >= 0, f"{where}.distill_weight", f"must be >= 0, got {self.distill_weight}.")
        require(is_gist_view(self.gist_view), f"{where}.gist_view",
                f"must be one of {', '.join(GIST_VIEWS)}, got {self.gist_view!r}.")
        require(self.gist_view == "all" or (self.use_gist_mask and self.context_encoder == "base"), f"{where}.gist_view",
                f"{self.gist_view} needs the gist mask and context_encoder: base (the two-pass read that masks per gist token).")
        read_problem = gist_read_problem(self.gist_read, self.gist_view)
        require(read_problem is None, f"{where}.gist_read", str(read_problem))
        if unknown := self.context_read.unknown_value():
            key, value, allowed = unknown
            raise GistkvError(f"{where}.{key}: must be one of {allowed}, got {value!r}.")
        # The adapted encoder reads context and gist in one pass: there is no separate context read to cast.
        require(self.context_autocast == "none" or self.context_encoder == "base", f"{where}.context_autocast",
                f"{self.context_autocast!r} needs context_encoder: base, got {self.context_encoder!r}.")

        require(not self.ladder or self.num_processes == 1, f"{where}.ladder",
                "needs num_processes: 1 (each rung saves the adapter the next one starts from on one process).")
        for index, keys in enumerate(self.ladder):
            for key in keys:
                require(key not in FIXED_ON_THE_LADDER, f"{where}.ladder.{index}.{key}",
                        "is the same on every rung (a rung starts from the last one's adapter); set it in train.")
            self.rung(index)        # each rung's keys checked as train's are, named by rung

    def rung(self, index: int) -> "TrainParams":
        """Rung ``index`` of the ladder (0 = the first trained): these params with the rung's keys changed."""
        mapping = {**dataclasses.asdict(self), "ladder": [], **self.ladder[index]}
        return from_mapping(TrainParams, mapping, f"train.ladder.{index}")

    @property
    def lora_record(self) -> dict:
        """The adapter's shape as compressor.json records it (and a warm start checks it)."""
        return {"r": self.lora_r, "alpha": self.lora_alpha, "target_modules": list(self.target_modules)}

    @property
    def context_read(self) -> ContextRead:
        return ContextRead(self.context_encoder, self.context_autocast)
