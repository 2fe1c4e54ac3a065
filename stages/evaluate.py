"""Stage evaluate: one method on one dataset -> predictions and flat metrics.

    python stages/evaluate.py --method full --dataset niah_en
    python stages/evaluate.py --method rag  --dataset niah_ko
    python stages/evaluate.py --method gist --dataset niah_en
    dvc repro evaluate            # every method x dataset (a DVC matrix)

Writes data/eval/<method>_<dataset>.jsonl and metrics/eval/<method>_<dataset>.json.
"""

import shutil
from pathlib import Path

import torch
import typer
from rich.progress import Progress

from gistkv.errors import GistkvError
from gistkv.evaluate import EvaluateParams, evaluate_method
from gistkv.io import read_json, read_jsonl, write_json, write_jsonl
from gistkv.methods import METHODS, FullContext, Gist, Rag
from gistkv.params import load_section
from gistkv.stage import seed_everything, stage_errors

app = typer.Typer(add_completion=False)


def dataset_records(niah: Path, dataset: str) -> list[dict]:
    if not dataset.startswith("niah_"):
        raise GistkvError(f"--dataset {dataset}: unknown (expected niah_<lang>).")
    return read_jsonl(niah / dataset.removeprefix("niah_") / "eval.jsonl")


def build_method(method: str, dataset: str, settings: EvaluateParams, base: Path, gist: Path, gist_kv: Path,
                 compress_times: Path, work: Path):
    if method not in METHODS:
        raise GistkvError(f"--method {method}: unknown (known: {', '.join(METHODS)}).")
    if method == "gist":
        from gistkv.compressor import load_compressor

        compressor = load_compressor(gist)
        kv_dir = gist_kv / dataset
        return Gist(compressor, kv_dir, read_json(kv_dir / "manifest.json"), read_json(compress_times).get(dataset, {}))
    from gistkv.model import load_base

    loaded = load_base(base)
    if method == "full":
        return FullContext(loaded.model, loaded.tokenizer, loaded.info["device"])
    from gistkv.embedder import load_embedder
    from gistkv.rag import RagIndex

    index_dir = work / f"rag_index_{dataset}"
    shutil.rmtree(index_dir, ignore_errors=True)        # rebuilt from scratch: indexing time is measured
    index = RagIndex(index_dir, dataset, load_embedder(base.parent / "embedder"), loaded.tokenizer,
                     settings.rag_chunk_tokens, settings.rag_chunk_overlap)
    return Rag(loaded.model, loaded.tokenizer, loaded.info["device"], index, settings.rag_top_k)


@app.command()
def main(method: str = typer.Option(...), dataset: str = typer.Option(...), params: Path = Path("params.yaml"),
         base: Path = Path("models/base"), gist: Path = Path("models/gist"), niah: Path = Path("data/niah"),
         gist_kv: Path = Path("data/gist_kv"), compress_times: Path = Path("metrics/extract/compress_times.json"),
         predictions_dir: Path = Path("data/eval"), metrics_dir: Path = Path("metrics/eval")) -> None:
    with stage_errors():
        settings = load_section(params, "evaluate", EvaluateParams)
        torch.set_num_threads(settings.torch_threads)
        seed_everything(0)
        records = dataset_records(niah, dataset)
        runner = build_method(method, dataset, settings, base, gist, gist_kv, compress_times,
                              predictions_dir.parent / "rag_index")
        with Progress() as progress:
            task = progress.add_task(f"{method} on {dataset}", total=len(records))
            predictions, metrics = evaluate_method(runner, records, settings.max_new_tokens, settings.warmup_samples,
                                                   progress=lambda: progress.advance(task))
        metrics.update(method=method, dataset=dataset)
        metrics = {key: metrics[key] for key in sorted(metrics)}
        write_jsonl(predictions_dir / f"{method}_{dataset}.jsonl", predictions)
        write_json(metrics_dir / f"{method}_{dataset}.json", metrics)
        typer.echo(f"{method} {dataset}: accuracy {metrics['accuracy']:.3f} "
                   f"[{metrics['accuracy_ci_low']:.3f}, {metrics['accuracy_ci_high']:.3f}], "
                   f"compression {metrics['compression_ratio']}x, ttft {metrics['ttft_s']}s")


if __name__ == "__main__":
    app()
