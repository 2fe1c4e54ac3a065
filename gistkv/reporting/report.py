"""The report: every method on the test split, per language and length, with intervals, paired tests, costs,
RULER, the bar of issue #30 and the training curves. Every number comes from files the stages wrote
(``metrics/eval/<group>/<dataset>/<method>.json``, ``data/eval/<group>/<dataset>.jsonl``, ``metrics/train*/``); none is typed in.

    from gistkv.reporting.report import build_report
    build_report(Path("metrics"), Path("data/eval"), Path("data/longbench"), params, targets, Path("metrics/report"))
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gistkv.data.niah import GROUPS
from gistkv.io import read_json, read_jsonl, write_json, write_text
from gistkv.reporting import plots
from gistkv.reporting.confidence import confidence_lines
from gistkv.reporting.near_misses import present_near_misses, question_blind
from gistkv.reporting.report_training import training_section
from gistkv.reporting.tables import (Targets, bar_lines, cost_lines, length_table, lengths_of, memory_lines, method_order,
                                     method_table, paired_lines, ruler_lines)

UNRECORDED = "not recorded"      # metrics written before the machine was named in them
METHOD_GROUPS = ("baselines", "gist")     # gistkv.evaluation.groups.GROUPS (importing it would load the methods)
HEADLINE = ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "accuracy_unseen_family", "accuracy_seen",
            "accuracy_unseen_text", "accuracy_keyed", "absent_declined", "present_declined", "document_accuracy",
            "wrong_number_rate", "budget_tokens",
            "answer_kv_bytes", "artifact_bytes", "score_mean")


@dataclass
class ReportParams:
    targets: Targets


def load_metrics(metrics_dir: Path) -> dict[str, dict[str, dict]]:
    """dataset -> method -> metrics."""
    found: dict[str, dict[str, dict]] = defaultdict(dict)
    for path in sorted((metrics_dir / "eval").glob("*/*/*.json")):      # eval/<group>/<dataset>/<method>.json
        metrics = read_json(path)
        found[metrics["dataset"]][metrics["method"]] = metrics
    return {dataset: dict(sorted(methods.items(), key=lambda item: method_order(item[0])))
            for dataset, methods in found.items()}


def dataset_rows(predictions_dir: Path, dataset: str) -> list[dict]:
    """Every method group's rows of one dataset (``data/eval/<group>/<dataset>.jsonl``), groups in order."""
    return [row for group in METHOD_GROUPS if (path := predictions_dir / group / f"{dataset}.jsonl").exists()
            for row in read_jsonl(path)]


def machines_line(methods: dict[str, dict]) -> list[str]:
    """Where the times of a table come from: one machine, or several (the groups ran apart, or a run resumed
    elsewhere); then only the times of one machine compare, and "Each method alone" has them all on one."""
    hosts = sorted({host for metrics in methods.values() for host in metrics.get("timed_on", UNRECORDED).split(" | ")})
    if len(hosts) == 1 and hosts != [UNRECORDED]:
        return [f"All times measured on one machine: {hosts[0]}.", ""]
    return [f"Times come from more than one machine ({'; '.join(hosts)}): "
            "compare times measured on the same one, or the section \"Each method alone\".", ""]


def summary(found: dict[str, dict[str, dict]]) -> dict:
    """Flat headline numbers per dataset and method, for `dvc metrics diff`."""
    return {f"{dataset}.{method}.{key}": metrics[key] for dataset, methods in sorted(found.items())
            for method, metrics in sorted(methods.items()) for key in HEADLINE if key in metrics}


def tradeoff_plot(methods: dict[str, dict], lang: str, out_dir: Path) -> str:
    series: dict[str, list] = defaultdict(list)
    for name, metrics in methods.items():
        ratio = np.median([value for key, value in metrics.items() if key.startswith("compression_ratio_tokens_")])
        family = "rag" if name.startswith("rag") else name.split("/")[0]
        label = f"{family} / {metrics['reader']}" if family in ("rag", "full") else name
        series[label].append((float(ratio), metrics["accuracy"], metrics["accuracy_ci_low"], metrics["accuracy_ci_high"]))
    name = f"accuracy_vs_compression_{lang}.png"
    plots.plot_tradeoff(dict(series), f"test {lang}: accuracy vs compression (Wilson 95 % intervals)", out_dir / name)
    return name


def heatmap_plot(rows: list[dict], method: str, lang: str, out_dir: Path) -> str | None:
    present = [row for row in rows if row["method"] == method and row.get("kind") == "present"]
    if not present:
        return None
    depths = sorted({row["depth_bin"] for row in present})
    lengths = sorted({row["target_tokens"] for row in present})
    grids = {}
    for group in GROUPS:
        grid = np.full((len(depths), len(lengths)), np.nan)
        for i, depth in enumerate(depths):
            for j, length in enumerate(lengths):
                cell_rows = [row["correct"] for row in present if row["group"] == group and row["depth_bin"] == depth
                             and row["target_tokens"] == length]
                if cell_rows:
                    grid[i, j] = sum(cell_rows) / len(cell_rows)
        grids[group] = grid
    name = f"heatmap_{method.replace('/', '-')}_{lang}.png"
    plots.plot_group_heatmaps(grids, depths, lengths, f"test {lang}: {method}, accuracy by group (depth x length)",
                              out_dir / name)
    return name


def build_report(metrics_dir: Path, predictions_dir: Path, longbench_dir: Path, params: dict, targets: Targets,
                 out_dir: Path) -> dict:
    found = load_metrics(metrics_dir)
    flat = summary(found)
    write_json(metrics_dir / "summary.json", flat)
    langs = list(params.get("niah", {}).get("languages", {}))
    lines = ["# gistkv report", "",
             "Generated by `dvc repro report` from `metrics/` and `data/eval/`; nothing here is typed in. Accuracy is on "
             "questions whose document holds the fact; intervals are Wilson 95 %. The test split is read by the final "
             "evaluation only; recipe decisions use dev.", "",
             "## The bar (issue #30)", "", *bar_lines(found, targets, langs), ""]
    test = []                       # every language's test answers, for the confidence check below
    for lang in langs:
        methods = found.get(f"niah_test_{lang}", {})
        if not methods:
            lines += [f"## Test, {lang}: not evaluated", ""]
            continue
        rows = dataset_rows(predictions_dir, f"niah_test_{lang}")
        test += rows
        lengths = lengths_of(methods)
        trained = max(params.get("niah", {}).get("train", {}).get("context_lengths", [0]))
        lines += [f"## Test, {lang}", "", *method_table(methods, lengths), "", *machines_line(methods),
                  f"By context length (training read documents of up to {trained:,} tokens):", "",
                  *length_table(methods, lengths), "",
                  "Memory at answer time (the gist file holds the same number of tokens at every length):", "",
                  *memory_lines(methods, lengths), "",
                  "Paired on the same questions:", "", *paired_lines(rows, list(methods)), ""]
        blind = {method: question_blind(rows, method) for method in methods}
        lines += ["Same answer to every question of a document (the fact it holds and the one it does not): "
                  + ", ".join(f"{method} {same}/{asked}" for method, (same, asked) in blind.items()) + ".", ""]
        misses = present_near_misses(rows, "gist")
        if misses["wrong"]:
            lines += [f"Gist's wrong answers: {misses['wrong']} of {misses['answers']}; {misses['near_misses']} have the "
                      f"key's length ({misses['one_digit_off']} one digit off).", ""]
        lines += [f"![accuracy vs compression]({tradeoff_plot(methods, lang, out_dir)})", ""]
        for method in ("gist", "full/tuned"):
            if picture := heatmap_plot(rows, method, lang, out_dir):
                lines += [f"![{method}]({picture})", ""]
    if (metrics_dir / "costs.json").exists():
        costs = read_json(metrics_dir / "costs.json")
        documents = next(iter(costs.values()))["n_documents"]
        lines += ["## Each method alone", "", f"A fresh process per method holding only its own model, on {documents} "
                  "test documents (stage `measure_costs`; medians; seconds end to end: reading or compressing or "
                  "indexing the document, storing and loading the gist file, retrieving, answering):", "",
                  *cost_lines(costs), ""]
    if "ruler" in found:
        samples = params.get("ruler", {}).get("samples_per_length", [])
        lines += ["## RULER (evaluation only; score = RULER's string match, %)", "",
                  f"Samples per task at each length: {samples} — each cell is a mean over that many samples.", "",
                  *ruler_lines(found["ruler"], params), ""]
    for lang in langs:
        if methods := found.get(f"niah_dev_{lang}"):
            lines += [f"## Dev, {lang} (for decisions)", "", *method_table(methods, lengths_of(methods)), ""]
    dev = [row for lang in langs for row in dataset_rows(predictions_dir, f"niah_dev_{lang}")]
    if dev and test:
        lines += ["## When to trust a gist answer", "", "`gistkv ask` flags an answer whose least likely token is "
                  "below a threshold. The threshold is chosen on dev (both languages) and checked on test:", "",
                  *confidence_lines(dev, test, "gist"), ""]
    status = longbench_dir / "status.json"
    if status.exists() and read_json(status).get("status", "").startswith("unavailable"):
        lines += ["## LongBench", "", f"LongBench: not evaluated (offline: {read_json(status)['status']}).", ""]
    elif (metrics_dir / "longbench.json").exists():
        lines += ["## LongBench", "", "See `metrics/longbench.json`.", ""]
    lines += training_section(metrics_dir, out_dir, params)
    write_text(out_dir / "report.md", "\n".join(lines))
    return flat
