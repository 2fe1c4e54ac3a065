"""Stage evaluate: every method on one dataset (dev or test NIAH per language, or RULER).

    python stages/evaluate.py --dataset niah_test_en
    python stages/evaluate.py --dataset niah_dev_ko        # recipe decisions are made on dev
    python stages/evaluate.py --dataset ruler
    dvc repro evaluate                                     # all of them (a DVC matrix)
    python stages/evaluate.py --dataset niah_dev_en --methods gist --gist models/gist-seed43 \
        --gist-kv /tmp/kv --predictions /tmp/eval --metrics /tmp/metrics     # one method of another run

Methods: full/<reader>, rag<budget>/<reader> for each reader in evaluate.readers and each budget in
evaluate.rag.budgets, gist (compressed, stored in data/gist_kv/<dataset>/, loaded back, answered) and
gist/empty. Each document is read once for all methods that read it whole. Writes
data/eval/<dataset>.jsonl (one row per document x question x method) and
metrics/eval/<dataset>/<method>.json.
"""

import dataclasses
from collections import Counter
from pathlib import Path

import torch
import typer
from rich.progress import Progress

from gistkv.errors import GistkvError
from gistkv.evaluation.evaluate import EvaluateParams, evaluate_documents, score_niah, score_ruler
from gistkv.evaluation.journal import Journal, run_fingerprint
from gistkv.evaluation.methods import build_methods, method_names
from gistkv.evaluation.readers import load_readers
from gistkv.evaluation.retrieval import Retriever, load_embedding_function
from gistkv.evaluation.summaries import niah_metrics, ruler_metrics
from gistkv.io import atomic_dir, read_jsonl, write_json, write_jsonl
from gistkv.params import load_section
from gistkv.stage import seed_everything, stage_errors

app = typer.Typer(add_completion=False)


def dataset_file(dataset: str, niah: Path, ruler: Path) -> Path:
    if dataset == "ruler":
        return ruler / "ruler.jsonl"
    parts = dataset.split("_")
    if len(parts) != 3 or parts[0] != "niah" or parts[1] not in ("dev", "test"):
        raise GistkvError(f"--dataset {dataset}: unknown (expected niah_<dev|test>_<lang> or ruler).")
    return niah / parts[2] / f"{parts[1]}.jsonl"


def method_slug(name: str) -> str:
    return name.replace("/", "-")


@app.command()
def main(dataset: str = typer.Option(...), params: Path = Path("params.yaml"), base: Path = Path("models/base"),
         gist: Path = Path("models/gist"), lora: Path = Path("models/lora"), niah: Path = Path("data/niah"),
         ruler: Path = Path("data/ruler"), embedder_cache: Path = Path("models/embedder"),
         gist_kv: Path = Path("data/gist_kv"), predictions: Path = Path("data/eval"),
         metrics: Path = Path("metrics/eval"),
         methods: str = typer.Option("", help="comma-separated method names (default: all the params name)")) -> None:
    with stage_errors():
        settings = load_section(params, "evaluate", EvaluateParams)
        torch.set_num_threads(settings.torch_threads)
        seed_everything(0)
        documents = read_jsonl(dataset_file(dataset, niah, ruler))
        if repeated := sorted(doc_id for doc_id, count in Counter(d["id"] for d in documents).items() if count > 1):
            raise GistkvError(f"{dataset_file(dataset, niah, ruler)}: document id {repeated[0]!r} appears more than "
                              "once; ids must be unique (regenerate the data with its stage).")
        names = method_names(settings.readers, settings.rag.budgets, gist=True)
        if dataset == "ruler":
            names = [name for name in names if name in settings.ruler_methods]
        if methods:
            unknown = sorted(set(methods.split(",")) - set(names))
            if unknown:
                raise GistkvError(f"--methods: {', '.join(unknown)} not among {', '.join(names)}.")
            names = methods.split(",")
        readers = load_readers(base, gist, lora, {"gist" if name.startswith("gist") else name.partition("/")[2]
                                                  for name in names})
        retriever = Retriever(load_embedding_function(settings.rag.embedder, embedder_cache, settings.torch_threads),
                              readers["base"].tokenizer)
        # Resumable: finished documents are kept in data/eval/.<dataset>.partial until the run ends.
        journal = Journal(predictions / f".{dataset}.partial", gist_kv / dataset,
                          run_fingerprint(dataset_file(dataset, niah, ruler), names, dataclasses.asdict(settings),
                                          [base, gist, lora, embedder_cache], Path(__file__),
                                          str(readers["base"].model.device)))
        todo = [document for document in documents if document["id"] not in journal.finished]
        with Progress() as progress:
            runners = build_methods(names, readers, retriever, settings.rag.budgets, journal.artifacts)
            task = progress.add_task(f"{len(names)} methods on {dataset}", total=len(documents),
                                     completed=len(documents) - len(todo))
            evaluate_documents(runners, readers["base"], todo, settings.max_new_tokens,
                               score_ruler if dataset == "ruler" else score_niah,
                               progress=lambda: progress.advance(task), on_document=journal.add,
                               charge_first_document=not journal.charged_once)
        rows = journal.rows_in_order(documents)
        # A run resumed on another machine: its times mix hosts (each document's methods share one).
        hosts = {"timed_on_hosts": " | ".join(journal.hosts())} if len(journal.hosts()) > 1 else {}
        summarize = ruler_metrics if dataset == "ruler" else niah_metrics
        with atomic_dir(metrics / dataset) as out:
            for name in names:
                method_rows = [row for row in rows if row["method"] == name]
                reader = method_rows[0]["reader"]
                write_json(out / f"{method_slug(name)}.json",
                           {"method": name, "reader": reader, "dataset": dataset, **summarize(method_rows), **hosts})
        write_jsonl(predictions / f"{dataset}.jsonl", rows)
        journal.finish()
        for name in names:
            found = [row for row in rows if row["method"] == name and row.get("kind", "present") == "present"]
            share = sum(row["correct"] for row in found) / max(len(found), 1)
            typer.echo(f"{dataset} {name:>14}: {share:.1%} of {len(found)}")


if __name__ == "__main__":
    app()
