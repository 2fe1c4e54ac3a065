"""Turn metric files into one page: a Full | RAG | Gist | LoRA-control table, targets met or not, and plots.

Every number comes from ``metrics/eval/*.json``, ``data/eval/*.jsonl``, ``metrics/train/train.json``
and the LongBench status file; nothing is typed in by hand.

    from gistkv.report import build_report
    build_report(Path("metrics"), Path("data/eval"), Path("data/longbench"), params, Path("metrics/report"))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gistkv import plots
from gistkv.io import read_json, read_jsonl, write_json, write_text
from gistkv.near_misses import passkey_near_misses

METHOD_TITLES = {"full": "Full context", "rag": "RAG", "gist": "Gist", "lora": "LoRA control (full context)"}
HEADLINE = ("accuracy", "accuracy_ci_low", "accuracy_passkey", "accuracy_passkey_ci_low", "accuracy_keyed",
            "compression_ratio", "kv_bytes", "peak_rss_mb", "ttft_s", "decode_tokens_per_s", "hallucination_rate")


@dataclass
class Targets:
    passkey_accuracy: float
    compression_min: float
    memory_saving: float


@dataclass
class ReportParams:
    targets: Targets


def training_time(train: dict) -> str:
    """"2153.6 s, of which held-out checks 424.0 s" (the checks' share only where it was measured)."""
    checks = train.get("held_out_checks_s")
    return f"{train.get('train_wall_s', '?')} s" + (f", of which held-out checks {checks} s" if checks is not None else "")


def training_seed(train: dict) -> str:
    """"seed 1045 (seed 45 restarted: on the loss plateau at the check, loss 1.328)": which attempt trained."""
    restarts = train.get("plateau_restarts") or []
    given_up = ", ".join(f"seed {entry['seed']} restarted: on the loss plateau at the check, loss {entry['loss']:.3f}"
                         for entry in restarts)
    return f"seed {train.get('seed', '?')}" + (f" ({given_up})" if given_up else "")


def load_eval_metrics(metrics_dir: Path) -> dict[tuple[str, str], dict]:
    found = {}
    for path in sorted((metrics_dir / "eval").glob("*.json")):
        metrics = read_json(path)
        found[(metrics["method"], metrics["dataset"])] = metrics
    return found


def summary(eval_metrics: dict[tuple[str, str], dict]) -> dict:
    """Flat headline numbers per method and dataset, for `dvc metrics diff`."""
    flat = {}
    for (method, dataset), metrics in sorted(eval_metrics.items()):
        for key in HEADLINE:
            if key in metrics:
                flat[f"{method}.{dataset}.{key}"] = metrics[key]
    return flat


def fmt(value, kind: str = "") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if kind == "bytes":
        return f"{value / 1024:,.0f} KiB" if value < 2**20 else f"{value / 2**20:,.1f} MiB"
    if kind == "pct":
        return f"{100 * value:.1f} %"
    if kind == "x":
        return f"{value:,.1f}x"
    return f"{value:,.3f}" if isinstance(value, float) else str(value)


def targets_table(eval_metrics: dict, dataset: str, targets: Targets) -> list[str]:
    gist, full = eval_metrics.get(("gist", dataset)), eval_metrics.get(("full", dataset))
    if not gist or not full:
        return [f"Targets for {dataset}: not evaluated (gist or full metrics missing)."]
    saving = 1 - gist["kv_bytes"] / full["kv_bytes"]
    passkey = gist.get("accuracy_passkey", float("nan"))
    checks = [
        (f"single-passkey accuracy ≥ {targets.passkey_accuracy:.0%}",
         f"{fmt(passkey, 'pct')} (Wilson lower bound {fmt(gist.get('accuracy_passkey_ci_low'), 'pct')}, "
         f"n = {gist.get('n_passkey', '–')})", passkey >= targets.passkey_accuracy),
        (f"compression ≥ {targets.compression_min:.0f}x", fmt(gist["compression_ratio"], "x"),
         gist["compression_ratio"] >= targets.compression_min),
        (f"KV memory saving > {targets.memory_saving:.0%} vs full", fmt(saving, "pct"), saving > targets.memory_saving),
        ("throughput kept (decode tok/s ≥ full's)", f"{fmt(gist['decode_tokens_per_s'])} vs {fmt(full['decode_tokens_per_s'])}",
         gist["decode_tokens_per_s"] >= full["decode_tokens_per_s"]),
    ]
    lines = ["| target | gist | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'met' if ok else '**not met**'} |" for name, value, ok in checks]
    control = eval_metrics.get(("lora", dataset))
    if control:     # what fine-tuning alone gives, with the whole context in view
        lines += ["", f"Against the plain-LoRA control (same training, no gist mask, full context): gist answers "
                  f"{fmt(gist['accuracy'], 'pct')} of all questions vs the control's {fmt(control['accuracy'], 'pct')}; "
                  f"single passkey {fmt(passkey, 'pct')} vs {fmt(control.get('accuracy_passkey'), 'pct')}."]
    return lines


def comparison_table(eval_metrics: dict, dataset: str) -> list[str]:
    rows = [("accuracy, all questions", "accuracy", "pct"), ("95 % CI (Wilson)", "", ""),
            ("accuracy, single passkey", "accuracy_passkey", "pct"), ("95 % CI (Wilson), single passkey", "_passkey", ""),
            ("accuracy, keyed + distractors", "accuracy_keyed", "pct"),
            ("compression ratio", "compression_ratio", "x"), ("KV bytes at answer time", "kv_bytes", "bytes"),
            ("peak RSS (process)", "peak_rss_mb", ""), ("time to first token (s)", "ttft_s", ""),
            ("decode tokens/s", "decode_tokens_per_s", ""), ("hallucination rate", "hallucination_rate", "pct"),
            ("one-off: compress s / context", "compress_s_median", ""), ("one-off: index s / context", "index_s_median", ""),
            ("retrieval recall (needle chunk)", "retrieval_recall", "pct"), ("samples", "n", "")]
    first = next(iter(eval_metrics.get((m, dataset)) for m in METHOD_TITLES if (m, dataset) in eval_metrics))
    extra = sorted(key for key in first if key.startswith(("accuracy_tokens_", "accuracy_haystack_")))
    rows[5:5] = [(key.replace("accuracy_tokens_", "accuracy at ").replace("accuracy_haystack_", "accuracy on haystack ")
                  + (" tokens" if key.startswith("accuracy_tokens_") else ""), key, "pct") for key in extra]
    methods = [m for m in METHOD_TITLES if (m, dataset) in eval_metrics]
    lines = ["| | " + " | ".join(METHOD_TITLES[m] for m in methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for title, key, kind in rows:
        cells = []
        for method in methods:
            metrics = eval_metrics[(method, dataset)]
            if key in ("", "_passkey"):     # a Wilson interval: accuracy{key}_ci_low .. _ci_high
                low, high = metrics.get(f"accuracy{key}_ci_low"), metrics.get(f"accuracy{key}_ci_high")
                cells.append(f"[{fmt(low, 'pct')}, {fmt(high, 'pct')}]" if low is not None else "–")
            elif key == "peak_rss_mb":
                cells.append(f"{metrics[key]:,.0f} MB")
            else:
                cells.append(fmt(metrics.get(key), kind))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines


def near_miss_lines(predictions: list[dict], method: str) -> list[str]:
    """Where the wrong single-passkey answers go wrong, digit by digit (a precision problem
    shows as one or two wrong digits at a few positions; a retrieval problem as any number)."""
    found = passkey_near_misses(predictions)
    if not found["wrong"]:
        return []
    positions = ", ".join(f"{position}: {count}" for position, count in found["by_position"].items())
    return [f"{METHOD_TITLES[method]}: {found['wrong']} wrong single-passkey answers, {found['near_misses']} of them "
            f"near misses (a number of the key's length), {found['one_digit_off']} one digit off; wrong digits by "
            f"position: {positions or '–'}.", ""]


def read_curve(path: Path) -> list[tuple[float, float]]:
    """(step, value) rows of a two-column TSV curve with a header; [] when the file is absent."""
    if not path.exists():
        return []
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line]
    return [(float(step), float(value)) for step, value in rows]


def heatmap_grid(predictions: list[dict]) -> tuple[np.ndarray, list[float], list[int]]:
    depths = sorted({p["depth_bin"] for p in predictions})
    lengths = sorted({p["target_tokens"] for p in predictions})
    grid = np.full((len(depths), len(lengths)), np.nan)
    for row, depth in enumerate(depths):
        for column, length in enumerate(lengths):
            cell = [p["correct"] for p in predictions if p["depth_bin"] == depth and p["target_tokens"] == length]
            if cell:
                grid[row, column] = sum(cell) / len(cell)
    return grid, depths, lengths


def longbench_status(longbench_dir: Path, metrics_dir: Path) -> str:
    scores_path = metrics_dir / "longbench.json"
    if scores_path.exists():
        scores = read_json(scores_path)
        if scores.get("evaluated"):
            return "; ".join(f"{key} = {value}" for key, value in sorted(scores.items()) if key != "evaluated")
    status_path = longbench_dir / "status.json"
    if not status_path.exists():
        return "not evaluated (download_longbench has not run)"
    status = json.loads(status_path.read_text(encoding="utf-8"))
    if status.get("status") != "available":
        return f"not evaluated (offline: {status.get('reason', 'unavailable')})"
    return "downloaded, not evaluated yet (run evaluate_longbench)"


def build_report(metrics_dir: Path, predictions_dir: Path, longbench_dir: Path, params: dict, targets: Targets,
                 out_dir: Path) -> dict:
    eval_metrics = load_eval_metrics(metrics_dir)
    flat = summary(eval_metrics)
    write_json(metrics_dir / "summary.json", flat)
    datasets = sorted({dataset for _, dataset in eval_metrics})
    train_path, control_path = metrics_dir / "train" / "train.json", metrics_dir / "train_lora" / "train.json"
    train = read_json(train_path) if train_path.exists() else {}
    control = read_json(control_path) if control_path.exists() else {}
    lines = ["# gistkv report", "",
             "Every number below is read from the pipeline's metric files (`metrics/eval/*.json`, "
             "`metrics/train/train.json`); regenerate with `dvc repro report`.", "",
             "## Setup", "",
             f"- model: `{params['model']['source']}` (dtype {train.get('dtype', '?')}, quantization "
             f"{train.get('quantization', '?')}, device {train.get('device', '?')})",
             f"- gist tokens: {params['gist']['num_tokens']}; training steps: {train.get('steps', '?')} "
             f"({training_time(train)}; {train.get('train_tokens_per_s', '?')} tokens/s; {training_seed(train)}); "
             f"eval loss {train.get('eval_loss_initial', '?')} → {train.get('eval_loss_final', '?')}",
             *([f"- plain-LoRA control (no gist mask): {control.get('steps', '?')} steps ({training_time(control)}); "
                f"eval loss {control.get('eval_loss_initial', '?')} → {control.get('eval_loss_final', '?')}"] if control else []),
             f"- eval sets: {', '.join(datasets)}; context lengths {params['niah']['splits']['eval']['context_lengths']} "
             f"tokens, depths {params['niah']['splits']['eval']['depth_min']:.0%}–{params['niah']['splits']['eval']['depth_max']:.0%}",
             f"- LongBench: {longbench_status(longbench_dir, metrics_dir)}", ""]
    points = []
    for dataset in datasets:
        lines += [f"## {dataset}", "", *comparison_table(eval_metrics, dataset), "", *targets_table(eval_metrics, dataset, targets), ""]
        for method in METHOD_TITLES:
            path = predictions_dir / f"{method}_{dataset}.jsonl"
            if (method, dataset) not in eval_metrics or not path.exists():
                continue
            grid, depths, lengths = heatmap_grid(read_jsonl(path))
            name = f"heatmap_{method}_{dataset}.png"
            plots.plot_heatmap(grid, depths, lengths, f"{METHOD_TITLES[method]} · {dataset}", out_dir / name)
            lines.append(f"![{method} {dataset}]({name})")
            metrics = eval_metrics[(method, dataset)]
            points.append((f"{method} {dataset}", metrics["compression_ratio"], metrics["accuracy"]))
        lines.append("")
        gist_predictions = predictions_dir / f"gist_{dataset}.jsonl"
        if gist_predictions.exists():
            lines += near_miss_lines(read_jsonl(gist_predictions), "gist")
    if points:
        plots.plot_points(points, "compression ratio (context tokens / tokens attended)", "accuracy",
                          "accuracy vs compression", out_dir / "accuracy_vs_compression.png")
        labels = [f"{m} {d}" for (m, d) in sorted(eval_metrics)]
        plots.plot_bars(labels, {"KV bytes at answer (MiB)": [eval_metrics[k]["kv_bytes"] / 2**20 for k in sorted(eval_metrics)],
                                 "peak RSS (MB)": [eval_metrics[k]["peak_rss_mb"] for k in sorted(eval_metrics)],
                                 "TTFT (s)": [eval_metrics[k]["ttft_s"] for k in sorted(eval_metrics)]},
                        "memory and latency", out_dir / "memory_ttft.png")
        lines += ["## Overview", "", "![accuracy vs compression](accuracy_vs_compression.png)", "",
                  "![memory and TTFT](memory_ttft.png)", ""]
    curves = {title: read_curve(metrics_dir / folder / name) for title, folder, name in (
        ("gist: train loss", "train", "loss.tsv"), ("gist: eval loss (held-out train samples)", "train", "eval_loss.tsv"),
        ("LoRA control: eval loss", "train_lora", "eval_loss.tsv"))}
    if curves["gist: train loss"]:
        plots.plot_curve({title: points for title, points in curves.items() if points}, "training", out_dir / "loss.png")
        lines += ["## Training", "", "![loss](loss.png)", ""]
    accuracy = {title: read_curve(metrics_dir / folder / "val_accuracy.tsv")
                for title, folder in (("gist (answers from the gist cache)", "train"),
                                      ("LoRA control (full context)", "train_lora"))}
    if any(accuracy.values()):
        plots.plot_curve(accuracy, "held-out training records: accuracy vs steps", out_dir / "accuracy_vs_steps.png",
                         ylabel="accuracy")
        held_out = params.get("train", {}).get("validation_samples", "?")
        lengths = sorted(set(params["niah"].get("splits", {}).get("train", {}).get("context_lengths", [])))
        lines += ["Accuracy vs training steps, measured during training with the evaluation code on the "
                  f"{held_out} held-out *training-split* records (mixed lengths {lengths} tokens; never the eval split): "
                  + "; ".join(f"{title}: " + " → ".join(f"{value:.0%}" for _, value in points)
                              for title, points in accuracy.items() if points) + ".", "",
                  "![accuracy vs steps](accuracy_vs_steps.png)", ""]
    write_text(out_dir / "report.md", "\n".join(lines))
    return flat
