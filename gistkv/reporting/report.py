"""The report: every method on the test split, per language and length, with intervals, paired tests, costs,
RULER, the bar of issue #30 and the training curves. Every number comes from files the stages wrote
(``metrics/eval/<dataset>/<method>.json``, ``data/eval/<dataset>.jsonl``, ``metrics/train*/``); none is typed in.

    from gistkv.reporting.report import build_report
    build_report(Path("metrics"), Path("data/eval"), Path("data/longbench"), params, targets, Path("metrics/report"))
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gistkv.reporting import plots
from gistkv.io import read_json, read_jsonl, write_json, write_text
from gistkv.reporting.near_misses import present_near_misses
from gistkv.data.niah import GROUPS
from gistkv.reporting.report_training import training_section
from gistkv.evaluation.scoring import mcnemar_exact

HEADLINE = ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "accuracy_unseen_family", "accuracy_seen",
            "accuracy_unseen_text", "accuracy_keyed", "absent_declined", "present_declined", "document_accuracy",
            "wrong_number_rate", "budget_tokens",
            "answer_kv_bytes", "artifact_bytes", "score_mean")


@dataclass
class Targets:
    unseen_family_accuracy: float
    seen_accuracy: float
    keyed_accuracy: float
    absent_declined: float
    compression_min: float


@dataclass
class ReportParams:
    targets: Targets


def fmt(value, kind: str = "") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if kind == "bytes":
        return f"{value / 1024:,.0f} KiB" if value < 2**20 else f"{value / 2**20:,.1f} MiB"
    if kind == "pct":
        return f"{100 * value:.1f} %"
    if kind == "x":
        return f"{value:,.0f}x" if value >= 10 else f"{value:,.1f}x"
    if kind == "s":
        return f"{value:,.2f} s"
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}" if isinstance(value, float) else str(value)


def method_order(name: str) -> tuple:
    """full, then retrieval by budget, then gist and its empty-document control; base before tuned."""
    kind, _, reader = name.partition("/")
    rank = {"full": 0, "gist": 2}.get(kind, 1)
    return rank, int(kind[3:]) if kind.startswith("rag") and kind[3:].isdigit() else 0, reader


def lengths_of(methods: dict[str, dict]) -> list[int]:
    """The context lengths a dataset was evaluated at, read off its metrics."""
    keys = {key for metrics in methods.values() for key in metrics}
    return sorted({int(key.rsplit("_", 1)[1]) for key in keys if key.startswith("accuracy_tokens_")
                   and key.rsplit("_", 1)[1].isdigit()})


def cell(metrics: dict, key: str) -> str:
    """"41.0 % [34.2, 48.1] (n 200)": a rate with its Wilson interval."""
    if key not in metrics:
        return "–"
    return (f"{100 * metrics[key]:.1f} % [{100 * metrics[key + '_ci_low']:.1f}, {100 * metrics[key + '_ci_high']:.1f}]"
            f" (n {metrics['n_' + key]})")


def load_metrics(metrics_dir: Path) -> dict[str, dict[str, dict]]:
    """dataset -> method -> metrics."""
    found: dict[str, dict[str, dict]] = defaultdict(dict)
    for path in sorted((metrics_dir / "eval").glob("*/*.json")):
        metrics = read_json(path)
        found[metrics["dataset"]][metrics["method"]] = metrics
    return {dataset: dict(sorted(methods.items(), key=lambda item: method_order(item[0])))
            for dataset, methods in found.items()}


def summary(found: dict[str, dict[str, dict]]) -> dict:
    """Flat headline numbers per dataset and method, for `dvc metrics diff`."""
    return {f"{dataset}.{method}.{key}": metrics[key] for dataset, methods in sorted(found.items())
            for method, metrics in sorted(methods.items()) for key in HEADLINE if key in metrics}


def method_table(methods: dict[str, dict], lengths: list[int]) -> list[str]:
    longest = max(lengths)
    header = ("| method | reader | reads (tokens) | accuracy [95 % CI] | unseen family | seen | unseen text | keyed "
              "| absent: declined | present: no number | both questions right | wrong number "
              f"| first answer, {longest} tok | per question, {longest} tok |")
    lines = [header, "|---" * 14 + "|"]
    for name, metrics in methods.items():
        short = lambda key: fmt(metrics.get(key), "pct")   # noqa: E731
        reads = "the document" if name.startswith("full/") else fmt(metrics.get("budget_tokens"))
        lines.append(f"| {name} | {metrics['reader']} | {reads} | {cell(metrics, 'accuracy')} "
                     f"| {short('accuracy_unseen_family')} | {short('accuracy_seen')} | {short('accuracy_unseen_text')} "
                     f"| {short('accuracy_keyed')} | {short('absent_declined')} | {short('present_declined')} "
                     f"| {short('document_accuracy')} | {short('wrong_number_rate')} "
                     f"| {fmt(metrics.get(f'first_answer_s_tokens_{longest}'), 's')} "
                     f"| {fmt(metrics.get(f'per_question_s_tokens_{longest}'), 's')} |")
    return lines


def length_table(methods: dict[str, dict], lengths: list[int]) -> list[str]:
    lines = ["| method | " + " | ".join(f"{length} tokens: accuracy · compression · first answer" for length in lengths)
             + " |", "|---" * (len(lengths) + 1) + "|"]
    for name, metrics in methods.items():
        cells = [f"{cell(metrics, f'accuracy_tokens_{length}')} · "
                 f"{fmt(metrics.get(f'compression_ratio_tokens_{length}'), 'x')} · "
                 f"{fmt(metrics.get(f'first_answer_s_tokens_{length}'), 's')}" for length in lengths]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def memory_lines(methods: dict[str, dict], lengths: list[int]) -> list[str]:
    gist = methods.get("gist", {})
    lines = ["| context tokens | full KV of the document | gist file (stored) | gist KV the answer reads | ratio |",
             "|---|---|---|---|---|"]
    for length in lengths:
        full = gist.get(f"full_kv_bytes_tokens_{length}")
        lines.append(f"| {length} | {fmt(full, 'bytes')} | {fmt(gist.get('artifact_bytes'), 'bytes')} "
                     f"| {fmt(gist.get('answer_kv_bytes'), 'bytes')} "
                     f"| {fmt(full / gist['answer_kv_bytes'] if full and gist.get('answer_kv_bytes') else None, 'x')} |")
    return lines


def paired_lines(rows: list[dict], methods: list[str], against: str = "gist") -> list[str]:
    """McNemar's exact test of ``against`` vs each other method on the same present questions."""
    outcome: dict[str, dict[tuple, bool]] = defaultdict(dict)
    for row in rows:
        if row.get("kind") == "present":
            outcome[row["method"]][(row["id"], row["question_index"])] = bool(row["correct"])
    if against not in outcome:
        return []
    lines = [f"| {against} vs | both right | only {against} | only the other | both wrong | McNemar exact p |",
             "|---|---|---|---|---|---|"]
    mine = outcome[against]
    for method in methods:
        if method == against or method not in outcome:
            continue
        other = outcome[method]
        keys = sorted(set(mine) & set(other))
        counts = [sum(mine[k] and other[k] for k in keys), sum(mine[k] and not other[k] for k in keys),
                  sum(other[k] and not mine[k] for k in keys), sum(not mine[k] and not other[k] for k in keys)]
        lines.append(f"| {method} | {counts[0]} | {counts[1]} | {counts[2]} | {counts[3]} "
                     f"| {mcnemar_exact(counts[1], counts[2]):.3g} |")
    return lines


def bar_lines(found: dict, targets: Targets, langs: list[str]) -> list[str]:
    lines = ["| bar (issue #30, test split) | " + " | ".join(langs) + " |", "|---" * (len(langs) + 1) + "|"]
    checks = [(f"unseen needle families ≥ {targets.unseen_family_accuracy:.0%}", "accuracy_unseen_family",
               targets.unseen_family_accuracy),
              (f"seen wordings on eval-only text ≥ {targets.seen_accuracy:.0%}", "accuracy_seen", targets.seen_accuracy),
              (f"keyed with distractors ≥ {targets.keyed_accuracy:.0%}", "accuracy_keyed", targets.keyed_accuracy),
              (f"absent answer declined ≥ {targets.absent_declined:.0%}", "absent_declined", targets.absent_declined)]
    for title, key, bar in checks:
        cells = []
        for lang in langs:
            gist = found.get(f"niah_test_{lang}", {}).get("gist", {})
            if key not in gist:
                cells.append("–")
                continue
            sure = " (also its lower bound)" if gist[f"{key}_ci_low"] >= bar else ""
            cells.append(f"{cell(gist, key)} {'met' + sure if gist[key] >= bar else '**not met**'}")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    def lowest_ratio(gist: dict) -> float | None:      # the bar is on documents of at least 1,000 tokens
        ratios = [value for key, value in gist.items() if key.startswith("compression_ratio_tokens_")
                  and int(key.rsplit("_", 1)[1]) >= 1000]
        return min(ratios) if ratios else None

    ratios = [lowest_ratio(found.get(f"niah_test_{lang}", {}).get("gist", {})) for lang in langs]
    lines.append(f"| compression ≥ {targets.compression_min:.0f}x on documents ≥ 1,000 tokens | "
                 + " | ".join("–" if r is None else f"{fmt(r, 'x')} {'met' if r >= targets.compression_min else '**not met**'}"
                              for r in ratios) + " |")
    return lines


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


def cost_lines(costs: dict[str, dict]) -> list[str]:
    """Each method alone in a fresh process (stage measure_costs): peak memory and end-to-end seconds."""
    lengths = sorted({int(key.rsplit("_", 1)[1]) for row in costs.values() for key in row
                      if key.startswith("first_answer_s_tokens_")})
    lines = ["| method | peak memory (process) | loading its model | "
             + " | ".join(f"{length} tok: first answer · per question" for length in lengths) + " |",
             "|---" * (len(lengths) + 3) + "|"]
    for name in sorted(costs, key=method_order):
        row = costs[name]
        lines.append(f"| {name} | {row['peak_rss_mb']:,.0f} MB | {fmt(row['load_s'], 's')} | " + " | ".join(
            f"{fmt(row.get(f'first_answer_s_tokens_{length}'), 's')} · {fmt(row.get(f'per_question_s_tokens_{length}'), 's')}"
            for length in lengths) + " |")
    return lines


def ruler_lines(methods: dict[str, dict], params: dict) -> list[str]:
    lengths = params.get("ruler", {}).get("context_lengths", [])
    tasks = params.get("ruler", {}).get("tasks", [])
    names = list(methods)
    lines = ["| task | length | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for task in tasks:
        for length in lengths:
            lines.append(f"| {task} | {length} | " + " | ".join(
                fmt(methods[name].get(f"score_{task}_tokens_{length}")) for name in names) + " |")
    lines.append("| **mean** | | " + " | ".join(fmt(methods[name].get("score_mean")) for name in names) + " |")
    return lines


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
    for lang in langs:
        methods = found.get(f"niah_test_{lang}", {})
        if not methods:
            lines += [f"## Test, {lang}: not evaluated", ""]
            continue
        rows = read_jsonl(predictions_dir / f"niah_test_{lang}.jsonl")
        lengths = lengths_of(methods)
        trained = max(params.get("niah", {}).get("train", {}).get("context_lengths", [0]))
        lines += [f"## Test, {lang}", "", *method_table(methods, lengths), "",
                  f"By context length (training read documents of up to {trained:,} tokens):", "",
                  *length_table(methods, lengths), "",
                  "Memory at answer time (the gist file holds the same number of tokens at every length):", "",
                  *memory_lines(methods, lengths), "",
                  "Paired on the same questions:", "", *paired_lines(rows, list(methods)), ""]
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
    status = longbench_dir / "status.json"
    if status.exists() and read_json(status).get("status", "").startswith("unavailable"):
        lines += ["## LongBench", "", f"LongBench: not evaluated (offline: {read_json(status)['status']}).", ""]
    elif (metrics_dir / "longbench.json").exists():
        lines += ["## LongBench", "", "See `metrics/longbench.json`.", ""]
    lines += training_section(metrics_dir, out_dir, params)
    write_text(out_dir / "report.md", "\n".join(lines))
    return flat
