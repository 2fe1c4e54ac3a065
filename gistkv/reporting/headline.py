"""The README's headline table, generated from ``metrics/`` (never typed): the test split, every method.

    gistkv headline                 # print the table
    gistkv headline --write         # put it into README.md between its headline markers

A test checks that README.md holds exactly what this prints for the committed metrics.
"""

from __future__ import annotations

from pathlib import Path

from gistkv.errors import GistkvError
from gistkv.reporting.report import load_metrics, machines_line
from gistkv.reporting.tables import cell, fmt, reads_label

START, END = "<!-- headline:start (gistkv headline --write) -->", "<!-- headline:end -->"


def headline_table(metrics_dir: Path) -> str:
    found = load_metrics(metrics_dir)
    langs = [dataset.rsplit("_", 1)[1] for dataset in sorted(found) if dataset.startswith("niah_test_")]
    if not langs:
        return "No test results in metrics/ yet: run `dvc repro`."
    lines = ["| test split | method | reads (tokens) | accuracy, fact present [95 % CI] | unseen families | seen wording, "
             "eval-only text | keyed + distractors | absent: declined | first answer at 2,048 tokens |",
             "|---|---|---|---|---|---|---|---|---|"]
    for lang in langs:
        for name, metrics in found[f"niah_test_{lang}"].items():
            lines.append(f"| {lang} | {name} | {reads_label(name, metrics)} | {cell(metrics, 'accuracy')} "
                         f"| {fmt(metrics.get('accuracy_unseen_family'), 'pct')} | {fmt(metrics.get('accuracy_seen'), 'pct')} "
                         f"| {fmt(metrics.get('accuracy_keyed'), 'pct')} | {fmt(metrics.get('absent_declined'), 'pct')} "
                         f"| {fmt(metrics.get('first_answer_s_tokens_2048'), 's')} |")
    tested = {name: metrics for lang in langs for name, metrics in found[f"niah_test_{lang}"].items()}
    lines += ["", machines_line(tested)[0]]          # the sentence, without the blank line that ends a report block
    if waiting := [lang for lang in langs if "gist" not in found[f"niah_test_{lang}"]]:
        lines += ["", f"The gist has no test results yet for {', '.join(waiting)} (`dvc repro evaluate_gist`): "
                  "the rows above are the baselines alone."]
    if any("gist/gated" in found[f"niah_test_{lang}"] for lang in langs):
        lines += ["", "gist/gated is what `gistkv ask` does: its declines come from the passage index stored beside the "
                  "gist (a check of what the document is about), not from the gist; no other method gets such a check."]
    if "ruler" in found:
        lines += ["", "RULER (13 tasks, mean of RULER's string-match score, %): " + "; ".join(
            f"{name} {fmt(metrics.get('score_mean'))}" for name, metrics in found["ruler"].items()) + "."]
    return "\n".join(lines)


def with_headline(readme: str, table: str) -> str:
    if START not in readme or END not in readme:
        raise GistkvError(f"README.md: the headline markers {START} ... {END} are missing.")
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{table}\n{END}{after}"
