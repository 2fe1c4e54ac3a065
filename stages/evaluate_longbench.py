"""Stage evaluate_longbench: full / rag / gist / lora on the downloaded LongBench tasks, or an offline note.

    python stages/evaluate_longbench.py
    dvc repro evaluate_longbench

Writes metrics/longbench.json (flat: <method>.<task>.score, LongBench's 0-100 scale) and
data/eval/longbench/<method>_<task>.jsonl. Gist compresses each context in-process here; an unknown method name is an error.
When download_longbench could not fetch the data, writes {"evaluated": 0} and the reason.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import typer

from gistkv.evaluate import EvaluateParams
from gistkv.io import read_jsonl, write_json, write_jsonl
from gistkv.params import load_section, require
from gistkv.stage import stage_errors

app = typer.Typer(add_completion=False)


@dataclass
class LongBenchEvalParams:
    methods: list[str]
    max_samples: int            # per task (the download keeps download_longbench.max_samples)
    max_context_tokens: int     # middle truncation of each context

    def validate(self, where: str) -> None:
        from gistkv.methods import METHODS

        unknown = [name for name in self.methods if name not in METHODS]
        require(not unknown, f"{where}.methods", f"unknown {unknown} (known: {', '.join(METHODS)}).")
        require(self.max_samples > 0 and self.max_context_tokens > 0, where, "max_samples and max_context_tokens must be positive.")


@app.command()
def main(params: Path = Path("params.yaml"), longbench: Path = Path("data/longbench"), base: Path = Path("models/base"),
         gist: Path = Path("models/gist"), lora: Path = Path("models/lora"), out: Path = Path("data/eval/longbench"),
         rag_index: Path = Path("data/rag_index/longbench"), metrics: Path = Path("metrics/longbench.json")) -> None:
    with stage_errors():
        settings = load_section(params, "evaluate_longbench", LongBenchEvalParams)
        evaluate = load_section(params, "evaluate", EvaluateParams)
        status = json.loads((longbench / "status.json").read_text(encoding="utf-8"))
        if status.get("status") != "available":
            write_json(metrics, {"evaluated": 0, "reason": f"not evaluated (offline: {status.get('reason')})"})
            write_jsonl(out / "NOT_EVALUATED.jsonl", [])
            typer.echo(f"LongBench not evaluated (offline: {status.get('reason')})")
            return
        from gistkv.longbench_eval import evaluate_task, to_method_record
        from gistkv.methods import MethodBuilder

        results = {"evaluated": 1}
        builder = MethodBuilder(base, gist, lora, evaluate)     # full and rag share one base model
        for method_name in settings.methods:
            # the index lives outside the stage's output: chromadb's files are not deterministic bytes
            method = builder.build(method_name, rag_index_dir=rag_index, collection="longbench")
            for task in status["tasks"]:
                raw = read_jsonl(longbench / f"{task}.jsonl")[: settings.max_samples]
                records = [to_method_record(task, r, i, method.tokenizer, settings.max_context_tokens) for i, r in enumerate(raw)]
                predictions, summary = evaluate_task(method, task, records)
                write_jsonl(out / f"{method_name}_{task}.jsonl", predictions)
                results[f"{method_name}.{task}.score"] = summary["score"]
        write_json(metrics, results)
        typer.echo(f"LongBench: {results}")


if __name__ == "__main__":
    app()
