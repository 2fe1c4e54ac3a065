"""Stage evaluate: one method on one dataset -> predictions and flat metrics.

    python stages/evaluate.py --method full --dataset niah_en
    python stages/evaluate.py --method rag  --dataset niah_ko
    python stages/evaluate.py --method gist --dataset niah_en
    python stages/evaluate.py --method lora --dataset niah_en   # plain-LoRA control (models/lora)
    dvc repro evaluate            # every method x dataset (a DVC matrix)

Writes data/eval/<method>_<dataset>.jsonl and metrics/eval/<method>_<dataset>.json.
"""

from pathlib import Path

import torch
import typer
from rich.progress import Progress

from gistkv.errors import GistkvError
from gistkv.evaluate import EvaluateParams, evaluate_method
from gistkv.io import read_json, read_jsonl, write_json, write_jsonl
from gistkv.methods import MethodBuilder
from gistkv.params import load_section
from gistkv.stage import seed_everything, stage_errors

app = typer.Typer(add_completion=False)


def dataset_records(niah: Path, dataset: str) -> list[dict]:
    if not dataset.startswith("niah_"):
        raise GistkvError(f"--dataset {dataset}: unknown (expected niah_<lang>).")
    return read_jsonl(niah / dataset.removeprefix("niah_") / "eval.jsonl")


@app.command()
def main(method: str = typer.Option(...), dataset: str = typer.Option(...), params: Path = Path("params.yaml"),
         base: Path = Path("models/base"), gist: Path = Path("models/gist"), lora: Path = Path("models/lora"),
         niah: Path = Path("data/niah"),
         gist_kv: Path = Path("data/gist_kv"), compress_times: Path = Path("metrics/extract/compress_times.json"),
         predictions_dir: Path = Path("data/eval"), metrics_dir: Path = Path("metrics/eval")) -> None:
    with stage_errors():
        settings = load_section(params, "evaluate", EvaluateParams)
        torch.set_num_threads(settings.torch_threads)
        seed_everything(0)
        records = dataset_records(niah, dataset)
        runner = MethodBuilder(base, gist, lora, settings).build(
            method, rag_index_dir=predictions_dir.parent / "rag_index" / dataset, collection=dataset,
            gist_kv_dir=gist_kv / dataset, compress_s=read_json(compress_times).get(dataset, {}) if method == "gist" else {})
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
