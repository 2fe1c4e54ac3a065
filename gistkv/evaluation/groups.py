"""Which methods an evaluation stage runs, and the files it writes for them.

Methods come in two groups, each its own DVC stage, so that retraining the gist re-evaluates the gist
alone: ``baselines`` (full/<reader>, rag<budget>/<reader>: models/base and models/lora) and ``gist``
(gist, gist/gated, gist/empty: models/base and models/gist, and the sentence embedder for the gate).

    names = group_methods(settings, "niah_test_en", "gist", "")       # ['gist', 'gist/gated', 'gist/empty']
    write_results(rows, names, "niah_test_en", Path("metrics/eval/gist/niah_test_en"),
                  Path("data/eval/gist/niah_test_en.jsonl"), hosts=[])
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from gistkv.errors import GistkvError
from gistkv.evaluation.registry import method_names
from gistkv.evaluation.summaries import niah_metrics, ruler_metrics
from gistkv.io import atomic_dir, write_json, write_jsonl

GROUPS = ("baselines", "gist")
GIST_KEYS = ("max_new_tokens", "torch_threads", "ruler_methods", "gate")     # the gist stage's params in dvc.yaml


def in_group(name: str, group: str) -> bool:
    return name.startswith("gist") == (group == "gist")


def group_settings(settings, group: str) -> dict:
    """The ``evaluate`` keys the group's rows depend on (what its DVC stage lists as params): a resumed run
    starts over only when one of these changed."""
    values = dataclasses.asdict(settings)
    return values if group == "baselines" else {key: values[key] for key in GIST_KEYS}


def group_methods(settings, dataset: str, group: str, only: str) -> list[str]:
    """The group's methods as ``evaluate`` params name them (RULER: those of ``ruler_methods``), or ``only``
    (comma-separated) after checking each is one of them."""
    if group not in GROUPS:
        raise GistkvError(f"--group {group}: unknown (expected {' or '.join(GROUPS)}).")
    names = [name for name in method_names(settings.readers, settings.rag.budgets, gist=True) if in_group(name, group)]
    if dataset == "ruler":
        names = [name for name in names if name in settings.ruler_methods]
    if only:
        if unknown := sorted(set(only.split(",")) - set(names)):
            raise GistkvError(f"--methods: {', '.join(unknown)} not among the {group} group's {', '.join(names)}.")
        names = only.split(",")
    return names


def unique_ids(documents: list[dict], source: Path) -> list[dict]:
    if repeated := sorted(doc_id for doc_id, count in Counter(d["id"] for d in documents).items() if count > 1):
        raise GistkvError(f"{source}: document id {repeated[0]!r} appears more than once; ids must be unique "
                          "(regenerate the data with its stage).")
    return documents


def method_slug(name: str) -> str:
    return name.replace("/", "-")


def write_results(rows: list[dict], names: list[str], dataset: str, metrics_dir: Path, rows_file: Path,
                  hosts: list[str]) -> None:
    """``<metrics_dir>/<method>.json`` per method and the rows; ``hosts``: the machines that timed them (more
    than one when a run resumed elsewhere; each document's methods ran on one). The report compares them
    across groups: the baselines and the gist may be evaluated on different machines."""
    summarize = ruler_metrics if dataset == "ruler" else niah_metrics
    timed_on = {"timed_on": " | ".join(hosts)}
    with atomic_dir(metrics_dir) as out:
        for name in names:
            method_rows = [row for row in rows if row["method"] == name]
            write_json(out / f"{method_slug(name)}.json", {"method": name, "reader": method_rows[0]["reader"],
                                                          "dataset": dataset, **summarize(method_rows), **timed_on})
    write_jsonl(rows_file, rows)
