"""Restart a gist run that is stuck on the loss plateau, with another seed.

Gist training learns the copy-through-the-gist skill suddenly, on the short contexts of the
curriculum, or not at all: of 16 CPU runs, 13 had left the plateau by step 400 (training loss
0.03–1.07 nats per answer token over steps 360–400) and 3 sat at 1.33–1.64, where they stayed
to the end (0 % passkey). 1.64 is what an answer costs when the gist carries nothing about the
key (5 digits x ln 10 over 7 answer tokens). So the run is checked once, at
``train.plateau_check_step``: if its mean logged loss over the last ``plateau_window`` steps is
above ``train.plateau_loss``, its checkpoints are dropped and it starts again with the next
attempt's seed (a new LoRA init), at most ``train.plateau_restarts`` times. The failed attempts
and their time stay in ``train.json``.

The decision is a function of the logged losses alone, so it is re-made when a run resumes
from a checkpoint past the check (checkpoints carry their log history) and recorded restarts
that the current settings would not have made void the checkpoints.

    train:
      plateau_check_step: 400   # 0 = never restart
      plateau_loss: 1.2
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gistkv.io import write_json

RESTARTS = "gistkv_restarts.json"   # in the checkpoint folder: the attempts given up so far
SEED_STRIDE = 1000                  # attempt k trains with seed + 1000 k: never a neighbouring run's seed


def attempt_seed(seed: int, attempt: int) -> int:
    return seed + SEED_STRIDE * attempt


def window_loss(log_history: list[dict], step: int, window: int) -> float | None:
    """Mean of the training losses logged in steps (step - window, step]; None if none were."""
    losses = [entry["loss"] for entry in log_history if "loss" in entry and step - window < entry["step"] <= step]
    return sum(losses) / len(losses) if losses else None


def stuck_loss(log_history: list[dict], params) -> float | None:
    """The window loss at the check step if it is above the plateau threshold, else None."""
    if params.plateau_check_step <= 0:
        return None
    loss = window_loss(log_history, params.plateau_check_step, params.plateau_window)
    return loss if loss is not None and loss > params.plateau_loss else None


def stuck_on_resume(checkpoint: str | None, params) -> float | None:
    """For a checkpoint past the check step: the decision re-made from the losses it logged."""
    if checkpoint is None:
        return None
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return stuck_loss(state["log_history"], params) if state["global_step"] >= params.plateau_check_step else None


def read_restarts(checkpoint_dir: Path, params) -> list[dict] | None:
    """The restarts recorded for these checkpoints, or None when the current settings would not
    have made them all (then the checkpoints belong to another run and must go)."""
    path = checkpoint_dir / RESTARTS
    restarts = json.loads(path.read_text())["restarts"] if path.exists() else []
    fits = len(restarts) <= params.plateau_restarts and all(
        entry["check_step"] == params.plateau_check_step and entry["window"] == params.plateau_window
        and entry["loss"] > params.plateau_loss for entry in restarts)
    return restarts if fits else None


def record_restart(checkpoint_dir: Path, restarts: list[dict], entry: dict) -> list[dict]:
    """Add a given-up attempt and drop its checkpoints (the folder's fingerprint stays)."""
    restarts = restarts + [entry]
    drop_checkpoints(checkpoint_dir)
    write_json(checkpoint_dir / RESTARTS, {"restarts": restarts})
    return restarts


def drop_checkpoints(checkpoint_dir: Path) -> None:
    for checkpoint in checkpoint_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)    # DDP: every rank makes the same decision and drops them
    (checkpoint_dir / RESTARTS).unlink(missing_ok=True)


def make_plateau_check(params, armed: bool):
    """A callback that stops the run at the check step when it is stuck (and skips that step's
    evaluation and checkpoint, which would be thrown away); ``stuck`` then holds the loss."""
    from transformers import TrainerCallback

    class PlateauCheck(TrainerCallback):
        stuck: float | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if armed and state.global_step == params.plateau_check_step and "loss" in (logs or {}):
                self.stuck = stuck_loss(state.log_history, params)
                if self.stuck is not None:
                    control.should_training_stop = True
                    control.should_evaluate = control.should_save = False
            return control

    return PlateauCheck()
