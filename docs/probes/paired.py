"""Two probes' predictions on the same documents, compared pair by pair (docs/experiments.md, QLoRA against float).

    python docs/probes/paired.py --method full/tuned \
        float=/work/probes/p-ctl500/eval/baselines/niah_dev_en.jsonl,/work/probes/p-ctl500/eval/baselines/niah_dev_ko.jsonl \
        nf4=/work/probes/p-ctl500-nf4/eval/baselines/niah_dev_en.jsonl,/work/probes/p-ctl500-nf4/eval/baselines/niah_dev_ko.jsonl

Prints, per label, present questions right (Wilson 95 % interval, and per dev group) and absent questions declined, then McNemar's
exact test of the first label against each other one on the present questions both answered (the report's
paired table, ``gistkv.reporting.tables.paired_lines``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from gistkv.evaluation.scoring import wilson_interval
from gistkv.io import read_jsonl
from gistkv.reporting.tables import paired_lines


def main(runs: list[str] = typer.Argument(..., help="LABEL=predictions.jsonl[,more.jsonl]"),
         method: str = typer.Option("full/tuned", help="the method whose rows are compared")) -> None:
    rows, labels = [], []
    for run in runs:
        label, paths = run.split("=", 1)
        labels.append(label)
        for path in paths.split(","):
            for row in read_jsonl(path):
                if row["method"] == method:
                    # ids repeat across languages' files: the file name keeps a pair within one document
                    rows.append({**row, "method": label, "id": f"{Path(path).stem}/{row['id']}"})
    for label in labels:
        present = [r for r in rows if r["method"] == label and r.get("kind") == "present"]
        absent = [r for r in rows if r["method"] == label and r.get("kind") == "absent"]
        right = sum(bool(r["correct"]) for r in present)
        low, high = wilson_interval(right, len(present))
        declined = sum(bool(r["declined"]) for r in absent)
        typer.echo(f"{label}: present {right}/{len(present)} = {right / len(present):.1%} [{low:.1%}, {high:.1%}]; "
                   f"absent declined {declined}/{len(absent)}")
        groups = sorted({r.get("group", "") for r in present})
        typer.echo("  by group: " + ", ".join(
            f"{g} {sum(bool(r['correct']) for r in present if r.get('group', '') == g)}/"
            f"{sum(r.get('group', '') == g for r in present)}" for g in groups))
    typer.echo("\n".join(paired_lines(rows, labels[1:], against=labels[0])))


if __name__ == "__main__":
    typer.run(main)
