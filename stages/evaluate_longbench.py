"""Stage evaluate_longbench: the methods on the downloaded LongBench tasks, or an offline note.

    python stages/evaluate_longbench.py
    dvc repro evaluate_longbench

Writes metrics/longbench.json (flat: <method>.<task>.score, LongBench's 0-100 scale) and
data/eval/longbench/<task>.jsonl. Gist compresses each context in-process here; an unknown method name is an error.
When download_longbench could not fetch the data, writes {"evaluated": 0} and the reason.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import typer

from gistkv.evaluation.evaluate import EvaluateParams
from gistkv.io import read_jsonl, write_json, write_jsonl
from gistkv.params import load_section, require
from gistkv.stage import stage_errors

app = typer.Typer(add_completion=False)


@dataclass
class LongBenchEvalParams:
    methods: list[str]          # method names as in gistkv.evaluation.methods: full/base, full/tuned, rag128/base, gist, ...
    max_samples: int            # per task (the download keeps download_longbench.max_samples)
    max_context_tokens: int     # middle truncation of each context

    def validate(self, where: str) -> None:
        require(bool(self.methods), f"{where}.methods", "must name at least one method.")
        require(self.max_samples > 0 and self.max_context_tokens > 0, where, "max_samples and max_context_tokens must be positive.")


@app.command()
def main(params: Path = Path("params.yaml"), longbench: Path = Path("data/longbench"), base: Path = Path("models/base"),
         gist: Path = Path("models/gist"), lora: Path = Path("models/lora"), out: Path = Path("data/eval/longbench"),
         embedder_cache: Path = Path("models/embedder"), metrics: Path = Path("metrics/longbench.json")) -> None:
    with stage_errors():
        settings = load_section(params, "evaluate_longbench", LongBenchEvalParams)
        evaluate = load_section(params, "evaluate", EvaluateParams)
        status = json.loads((longbench / "status.json").read_text(encoding="utf-8"))
        if status.get("status") != "available":
            write_json(metrics, {"evaluated": 0, "reason": f"not evaluated (offline: {status.get('reason')})"})
            write_jsonl(out / "NOT_EVALUATED.jsonl", [])
            typer.echo(f"LongBench not evaluated (offline: {status.get('reason')})")
            return
        from gistkv.evaluation.evaluate import evaluate_documents
        from gistkv.evaluation.longbench_eval import score_longbench, to_document
        from gistkv.evaluation.registry import build_methods
        from gistkv.evaluation.readers import load_readers
        from gistkv.evaluation.retrieval import Retriever, load_embedding_function

        wanted = {"gist" if name.startswith("gist") else name.partition("/")[2] for name in settings.methods}
        readers = load_readers(base, gist, lora, wanted)
        retriever = Retriever(load_embedding_function(evaluate.rag.embedder, embedder_cache), readers["base"].tokenizer)
        methods = build_methods(settings.methods, readers, retriever, evaluate.rag.budgets)
        results = {"evaluated": 1}
        for task in status["tasks"]:
            raw = read_jsonl(longbench / f"{task}.jsonl")[: settings.max_samples]
            documents = [to_document(task, record, index, readers["base"].tokenizer, settings.max_context_tokens)
                         for index, record in enumerate(raw)]
            rows = evaluate_documents(methods, readers["base"], documents, 32, score_longbench)
            write_jsonl(out / f"{task}.jsonl", rows)
            for method in methods:
                scores = [row["score"] for row in rows if row["method"] == method.name]
                results[f"{method.name}.{task}.score"] = round(100 * sum(scores) / max(len(scores), 1), 2)
        write_json(metrics, results)
        typer.echo(f"LongBench: {results}")


if __name__ == "__main__":
    app()
