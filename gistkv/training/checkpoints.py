"""Checkpoint bookkeeping of a training run: reuse only checkpoints of the same inputs, and its time.

A checkpoint folder carries a fingerprint of everything that defines the run (recipe, gist params,
base model, training data); a re-run with the same fingerprint resumes from the last checkpoint,
another one starts clean. Each checkpoint records the seconds spent up to it, so a resumed run
reports its whole training time.

    resume_from = prepare_checkpoints(Path("models/gist_checkpoints"), fingerprint(params, data_hash))
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from gistkv.io import write_json

log = logging.getLogger(__name__)
FINGERPRINT = "gistkv_fingerprint.json"
ELAPSED = "gistkv_elapsed.json"     # in each checkpoint: seconds up to it (all; held-out checks), summed over resumes
LADDER_DIR = "ladder"   # the ladder's rungs (gistkv.training.ladder), each with a fingerprint of its own: a main run
                        # that starts clean keeps them


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
            for path in checkpoint_dir.iterdir():
                if path.name != LADDER_DIR:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"fingerprint": print_})
    return get_last_checkpoint(str(checkpoint_dir))


def record_elapsed(checkpoint: Path, train_s: float, checks_s: float) -> None:
    write_json(checkpoint / ELAPSED, {"train_s": round(train_s, 3), "checks_s": round(checks_s, 3)})


def seconds_before(checkpoint: str | None) -> tuple[float, float]:
    """Seconds spent before resuming from ``checkpoint``: in all, and of those in held-out checks."""
    if checkpoint is None:
        return 0.0, 0.0
    elapsed = json.loads((Path(checkpoint) / ELAPSED).read_text())
    return float(elapsed["train_s"]), float(elapsed["checks_s"])


def sort_adapter_config(path: Path) -> None:
    """peft writes target_modules from a set, in an order that changes with Python's string hashing;
    sorted, the same params give the same adapter bytes (and the same dvc.lock hash)."""
    config = json.loads(path.read_text(encoding="utf-8"))
    for key in ("target_modules", "modules_to_save"):         # sets in peft; order carries no meaning
        if isinstance(config.get(key), list):
            config[key] = sorted(config[key])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
