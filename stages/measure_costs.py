"""Stage measure_costs: every method alone in a fresh process on a few test documents per length — end-to-end
seconds on one clock and the process's peak memory, with nothing loaded that the method does not use.

    python stages/measure_costs.py          # writes metrics/costs.json
    dvc repro measure_costs
"""

from pathlib import Path

import typer

from gistkv.evaluation.costs import CostParams, cost_summary, measure_method
from gistkv.evaluation.evaluate import EvaluateParams
from gistkv.evaluation.registry import method_names
from gistkv.evaluation.summaries import by
from gistkv.io import read_jsonl, write_json
from gistkv.params import load_section
from gistkv.stage import stage_errors

app = typer.Typer(add_completion=False)


@app.command()
def main(params: Path = Path("params.yaml"), base: Path = Path("models/base"), gist: Path = Path("models/gist"),
         lora: Path = Path("models/lora"), niah: Path = Path("data/niah"),
         out: Path = Path("metrics/costs.json")) -> None:
    with stage_errors():
        settings = load_section(params, "evaluate", EvaluateParams)
        costs = load_section(params, "measure_costs", CostParams)
        documents = []
        for lang in costs.langs:
            for _, same_length in by(read_jsonl(niah / lang / "test.jsonl"), "target_tokens").items():
                documents += same_length[: costs.documents_per_length]
        results = {}
        for name in method_names(settings.readers, settings.rag.budgets, gist=True):
            results[name] = cost_summary(name, measure_method(name, base, gist, lora, documents, settings))
            typer.echo(f"{name:>14}: peak {results[name]['peak_rss_mb']:,.0f} MB, " + ", ".join(
                f"{key.split('_')[-1]} tok {value:.2f} s" for key, value in results[name].items()
                if key.startswith("first_answer_s_tokens_")))
        write_json(out, results)


if __name__ == "__main__":
    app()
