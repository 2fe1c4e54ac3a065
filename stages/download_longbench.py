"""Stage download_longbench: LongBench v1 tasks into data/longbench/<task>.jsonl (or an offline status).

    python stages/download_longbench.py
    dvc repro download_longbench
"""

from pathlib import Path

import typer
from rich.progress import Progress

from gistkv.data.longbench import LongBenchParams, fetch_longbench
from gistkv.io import atomic_dir
from gistkv.params import load_section
from gistkv.stage import stage_errors

app = typer.Typer(add_completion=False)


@app.command()
def main(params: Path = Path("params.yaml"), out: Path = Path("data/longbench"),
         download_dir: Path = Path("data/downloads")) -> None:
    with stage_errors():
        settings = load_section(params, "download_longbench", LongBenchParams)
        with Progress() as progress, atomic_dir(out) as tmp:
            task = progress.add_task("LongBench data.zip", total=None)
            status = fetch_longbench(settings, tmp, download_dir,
                                     progress=lambda done, total: progress.update(task, completed=done, total=total or None))
        typer.echo(f"LongBench: {status['status']} {status.get('reason', status.get('counts', ''))}")


if __name__ == "__main__":
    app()
