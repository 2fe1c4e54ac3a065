"""The report's training section: what was trained, how long it took, and the curves (loss, dev accuracy).

    lines = training_section(Path("metrics"), Path("metrics/report"), params)
"""

from __future__ import annotations

from pathlib import Path

from gistkv.io import read_json
from gistkv.reporting import plots


def read_curve(path: Path) -> list[tuple[float, float]]:
    """(step, value) rows of a two-column TSV curve with a header; [] when the file is absent."""
    if not path.exists():
        return []
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line]
    return [(float(step), float(value)) for step, value in rows]


def run_line(title: str, train: dict) -> str:
    restarts = "; ".join(f"seed {entry['seed']} restarted (plateau loss {entry['loss']:.3f})"
                         for entry in train.get("plateau_restarts") or [])
    minutes = train.get("train_wall_s", float("nan")) / 60
    ladder = ""
    if rungs := train.get("ladder"):    # it climbed a ladder first (gistkv.training.ladder): the rungs are its cost too
        ladder = (f", after {len(rungs)} rung(s) of {' + '.join(str(rung['steps']) for rung in rungs)} steps "
                  f"({train['train_wall_s_with_ladder'] / 60:.1f} min with them)")
    return (f"- {title}: {train.get('steps', '?')} steps, seed {train.get('seed', '?')}"
            f"{' (' + restarts + ')' if restarts else ''}, {minutes:.1f} min ({train.get('held_out_checks_s', '?')} s "
            f"of it held-out checks){ladder} on {train.get('device', '?')} ({train.get('dtype', '?')}, quantization "
            f"{train.get('quantization', '?')}, {train.get('torch_threads', '?')} threads); dev loss "
            f"{train.get('eval_loss_initial', '?')} → {train.get('eval_loss_final', '?')}")


def training_section(metrics_dir: Path, out_dir: Path, params: dict) -> list[str]:
    runs = {title: metrics_dir / folder / "train.json" for title, folder in
            (("gist", "train"), ("plain-LoRA control (tuned reader)", "train_lora"))}
    lines = ["## Training", ""]
    for title, path in runs.items():
        if path.exists():
            lines.append(run_line(title, read_json(path)))
    lines.append("")
    losses = {title: read_curve(metrics_dir / folder / name) for title, folder, name in (
        ("gist: train loss", "train", "loss.tsv"), ("gist: dev loss", "train", "eval_loss.tsv"),
        ("control: dev loss", "train_lora", "eval_loss.tsv"))}
    if any(losses.values()):
        plots.plot_curve({title: points for title, points in losses.items() if points}, "training", out_dir / "loss.png")
        lines += ["![loss](loss.png)", ""]
    accuracy = {title: read_curve(metrics_dir / folder / name) for title, folder, name in (
        ("gist: dev accuracy", "train", "val_accuracy.tsv"), ("gist: dev absent declined", "train", "val_absent_declined.tsv"),
        ("control: dev accuracy", "train_lora", "val_accuracy.tsv"))}
    if any(accuracy.values()):
        plots.plot_curve({title: points for title, points in accuracy.items() if points},
                         "dev documents during training", out_dir / "accuracy_vs_steps.png", ylabel="share")
        held_out = params.get("train", {}).get("validation_samples", "?")
        lines += [f"Measured during training with the inference code on the first {held_out} dev documents (dev "
                  "families and passages, never test): "
                  + "; ".join(f"{title}: " + " → ".join(f"{value:.0%}" for _, value in points)
                              for title, points in accuracy.items() if points) + ".", "",
                  "![dev accuracy vs steps](accuracy_vs_steps.png)", ""]
    return lines
