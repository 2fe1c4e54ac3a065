"""The report's markdown tables: methods, lengths, memory, paired tests, the bar, costs and RULER, each a list of lines.

    from gistkv.reporting.tables import method_table
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from gistkv.evaluation.scoring import mcnemar_exact


@dataclass
class Targets:
    """The bar the report checks the gist against (params.yaml ``report.targets``)."""
    unseen_family_accuracy: float
    seen_accuracy: float
    keyed_accuracy: float
    absent_declined: float
    compression_min: float


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
    """full, then retrieval by budget, then gist, gist/gated and the empty-document control; base before tuned."""
    kind, _, reader = name.partition("/")
    rank = {"full": 0, "gist": 2}.get(kind, 1)
    gist_rank = {"": 0, "gated": 1, "empty": 2}.get(reader, 0) if kind == "gist" else 0
    return rank, int(kind[3:]) if kind.startswith("rag") and kind[3:].isdigit() else 0, gist_rank, reader


def reads_label(name: str, metrics: dict) -> str:
    """What a method's answer reads: the whole document (its size differs per document: a median of it is no
    sample's size), or its budget of tokens, and for gist/gated the passage index beside them."""
    if name.startswith("full/"):
        return "the document"
    return fmt(metrics.get("budget_tokens")) + (" + passage index" if name == "gist/gated" else "")


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


def method_table(methods: dict[str, dict], lengths: list[int]) -> list[str]:
    longest = max(lengths)
    header = ("| method | reader | reads (tokens) | accuracy [95 % CI] | unseen family | seen | unseen text | keyed "
              "| absent: declined | present: no number | both questions right | wrong number "
              f"| first answer, {longest} tok | per question, {longest} tok |")
    lines = [header, "|---" * 14 + "|"]
    for name, metrics in methods.items():
        short = lambda key: fmt(metrics.get(key), "pct")   # noqa: E731
        lines.append(f"| {name} | {metrics['reader']} | {reads_label(name, metrics)} | {cell(metrics, 'accuracy')} "
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
    """Bytes per context length; with gist/gated, its file too (the gist and the passage index, which grows
    with the document: a median over all lengths, like the gist file's)."""
    gist, gated = methods.get("gist", {}), methods.get("gist/gated")
    lines = ["| context tokens | full KV of the document | gist file (stored) | gist KV the answer reads | ratio |"
             + (" gated file (gist + passage index) |" if gated else ""), "|---|---|---|---|---|" + ("---|" if gated else "")]
    for length in lengths:
        full = gist.get(f"full_kv_bytes_tokens_{length}")
        lines.append(f"| {length} | {fmt(full, 'bytes')} | {fmt(gist.get('artifact_bytes'), 'bytes')} "
                     f"| {fmt(gist.get('answer_kv_bytes'), 'bytes')} "
                     f"| {fmt(full / gist['answer_kv_bytes'] if full and gist.get('answer_kv_bytes') else None, 'x')} |"
                     + (f" {fmt(gated.get(f'artifact_bytes_tokens_{length}', gated.get('artifact_bytes')), 'bytes')} |"
                        if gated else ""))
    return lines


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: p-values that hold for the whole family of tests at once.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def paired_lines(rows: list[dict], methods: list[str], against: str = "gist") -> list[str]:
    """McNemar's exact test of ``against`` vs each other method on the same present questions, with Holm's
    adjustment over the table's comparisons (one table, one family of tests)."""
    outcome: dict[str, dict[tuple, bool]] = defaultdict(dict)
    for row in rows:
        if row.get("kind") == "present":
            outcome[row["method"]][(row["id"], row["question_index"])] = bool(row["correct"])
    if against not in outcome:
        return []
    mine = outcome[against]
    table = []
    for method in methods:
        if method == against or method not in outcome:
            continue
        other = outcome[method]
        keys = sorted(set(mine) & set(other))
        counts = [sum(mine[k] and other[k] for k in keys), sum(mine[k] and not other[k] for k in keys),
                  sum(other[k] and not mine[k] for k in keys), sum(not mine[k] and not other[k] for k in keys)]
        table.append((method, counts, mcnemar_exact(counts[1], counts[2])))
    adjusted = holm([p for _, _, p in table])
    lines = [f"| {against} vs | both right | only {against} | only the other | both wrong | McNemar exact p "
             "| Holm-adjusted p |", "|---|---|---|---|---|---|---|"]
    for (method, counts, p), held in zip(table, adjusted):
        lines.append(f"| {method} | {counts[0]} | {counts[1]} | {counts[2]} | {counts[3]} | {p:.3g} | {held:.3g} |")
    return lines


def bar_lines(found: dict, targets: Targets, langs: list[str]) -> list[str]:
    lines = ["| bar (issue #30, test split) | " + " | ".join(langs) + " |", "|---" * (len(langs) + 1) + "|"]
    checks = [(f"unseen needle families ≥ {targets.unseen_family_accuracy:.0%}", "accuracy_unseen_family",
               targets.unseen_family_accuracy),
              (f"seen wordings on eval-only text ≥ {targets.seen_accuracy:.0%}", "accuracy_seen", targets.seen_accuracy),
              (f"keyed with distractors ≥ {targets.keyed_accuracy:.0%}", "accuracy_keyed", targets.keyed_accuracy),
              (f"absent answer declined ≥ {targets.absent_declined:.0%}", "absent_declined", targets.absent_declined)]
    # gist: the compressor alone; gist/gated: what `gistkv ask` does (the passage index declines first)
    gated = any("gist/gated" in found.get(f"niah_test_{lang}", {}) for lang in langs)
    for method, suffix in (("gist", ""), ("gist/gated", ", behind the gate (`gistkv ask`)"))[:2 if gated else 1]:
        for title, key, bar in checks:
            cells = []
            for lang in langs:
                gist = found.get(f"niah_test_{lang}", {}).get(method, {})
                if key not in gist:
                    cells.append("–")
                    continue
                sure = " (also its lower bound)" if gist[f"{key}_ci_low"] >= bar else ""
                cells.append(f"{cell(gist, key)} {'met' + sure if gist[key] >= bar else '**not met**'}")
            lines.append(f"| {title}{suffix} | " + " | ".join(cells) + " |")
    def lowest_ratio(gist: dict) -> float | None:      # the bar is on documents of at least 1,000 tokens
        ratios = [value for key, value in gist.items() if key.startswith("compression_ratio_tokens_")
                  and int(key.rsplit("_", 1)[1]) >= 1000]
        return min(ratios) if ratios else None

    ratios = [lowest_ratio(found.get(f"niah_test_{lang}", {}).get("gist", {})) for lang in langs]
    lines.append(f"| compression ≥ {targets.compression_min:.0f}x on documents ≥ 1,000 tokens | "
                 + " | ".join("–" if r is None else f"{fmt(r, 'x')} {'met' if r >= targets.compression_min else '**not met**'}"
                              for r in ratios) + " |")
    return lines


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
