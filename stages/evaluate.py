"""Stages evaluate_baselines and evaluate_gist: one group of methods on one dataset (dev or test NIAH per
language, or RULER).

    python stages/evaluate.py --dataset niah_test_en --group baselines
    python stages/evaluate.py --dataset niah_dev_ko --group gist      # recipe decisions are made on dev
    dvc repro evaluate_gist                                        # every dataset (a DVC matrix)
    python stages/evaluate.py --dataset niah_dev_en --group gist --methods gist --gist models/gist-seed43 \
        --gist-kv /tmp/kv --predictions /tmp/eval --metrics /tmp/metrics     # the gist of another run

Groups: ``baselines`` = full/<reader> and rag<budget>/<reader> for each reader in evaluate.readers and
each budget in evaluate.rag.budgets (they read models/base and models/lora); ``gist`` = gist
(compressed, stored in data/gist_kv/<dataset>/, loaded back, answered), gist/gated (the same behind the
presence gate of ``gistkv ask``, evaluate.gate) and gist/empty (models/base and models/gist). So retraining the gist (``dvc exp run -S gist.num_tokens=25``) re-evaluates the gist
group only. Within a group each document is read once for all methods that read it whole. Writes
data/eval/<group>/<dataset>.jsonl (one row per document x question x method) and
metrics/eval/<group>/<dataset>/<method>.json; resumes after a kill (``gistkv.evaluation.journal``).
"""

from pathlib import Path

import torch
import typer
from rich.progress import Progress

from gistkv.core.presence import load_embedder
from gistkv.errors import GistkvError
from gistkv.evaluation.evaluate import EvaluateParams, evaluate_documents, score_niah, score_ruler
from gistkv.evaluation.groups import group_methods, group_settings, unique_ids, write_results
from gistkv.evaluation.journal import Journal, run_fingerprint
from gistkv.evaluation.registry import build_methods
from gistkv.evaluation.readers import load_readers
from gistkv.evaluation.retrieval import Retriever, load_embedding_function
from gistkv.io import read_jsonl
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


@app.command()
def main(dataset: str = typer.Option(...), group: str = typer.Option(..., help="baselines | gist"),
         params: Path = Path("params.yaml"), base: Path = Path("models/base"),
         gist: Path = Path("models/gist"), lora: Path = Path("models/lora"), niah: Path = Path("data/niah"),
         ruler: Path = Path("data/ruler"), embedder_cache: Path = Path("models/embedder"),
         gist_kv: Path = Path("data/gist_kv"), predictions: Path = Path("data/eval"),
         metrics: Path = Path("metrics/eval"),
         methods: str = typer.Option("", help="comma-separated method names (default: the group's, as params name them)")
         ) -> None:
    with stage_errors():
        settings = load_section(params, "evaluate", EvaluateParams)
        names = group_methods(settings, dataset, group, methods)
        if not names:           # e.g. evaluate.ruler_methods names none of this group: nothing to load or run
            write_results([], [], dataset, metrics / group / dataset, predictions / group / f"{dataset}.jsonl", [])
            if group == "gist":
                (gist_kv / dataset).mkdir(parents=True, exist_ok=True)
            typer.echo(f"{dataset}: evaluate.ruler_methods names no method of the {group} group; wrote empty results.")
            return
        torch.set_num_threads(settings.torch_threads)
        seed_everything(0)
        source = dataset_file(dataset, niah, ruler)
        documents = unique_ids(read_jsonl(source), source)
        readers = load_readers(base, gist, lora, {"gist" if name.startswith("gist") else name.partition("/")[2]
                                                  for name in names})
        retriever = (Retriever(load_embedding_function(settings.rag.embedder, embedder_cache, settings.torch_threads),
                               readers["base"].tokenizer) if any(name.startswith("rag") for name in names) else None)
        gate = ((load_embedder(embedder_cache, settings.torch_threads), settings.gate.min_similarity)
                if "gist/gated" in names else None)
        models = [base, gist] if group == "gist" else [base, lora, embedder_cache]
        # Resumable: finished documents are kept in data/eval/<group>/.<dataset>.partial until the run ends.
        journal = Journal(predictions / group / f".{dataset}.partial", gist_kv / dataset if group == "gist" else None,
                          run_fingerprint(source, names, group_settings(settings, group), models, Path(__file__),
                                          str(readers["base"].model.device)))
        todo = [document for document in documents if document["id"] not in journal.finished]
        with Progress() as progress:
            runners = build_methods(names, readers, retriever, settings.rag.budgets, journal.artifacts, gate)
            task = progress.add_task(f"{len(names)} methods on {dataset}", total=len(documents),
                                     completed=len(documents) - len(todo))
            evaluate_documents(runners, readers["base"], todo, settings.max_new_tokens,
                               score_ruler if dataset == "ruler" else score_niah,
                               progress=lambda: progress.advance(task), on_document=journal.add,
                               charge_first_document=not journal.charged_once)
        rows = journal.rows_in_order(documents)
        write_results(rows, names, dataset, metrics / group / dataset, predictions / group / f"{dataset}.jsonl",
                      journal.hosts())
        journal.finish()
        for name in names:
            found = [row for row in rows if row["method"] == name and row.get("kind", "present") == "present"]
            share = sum(row["correct"] for row in found) / max(len(found), 1)
            typer.echo(f"{dataset} {name:>14}: {share:.1%} of {len(found)}")


if __name__ == "__main__":
    app()
