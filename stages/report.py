"""Stage report: metrics/summary.json (for `dvc metrics diff`), metrics/report/report.md and PNG plots.

    python stages/report.py
    dvc repro report && open metrics/report/report.md
"""

from pathlib import Path

import typer

from gistkv.params import load_section, read_params
from gistkv.reporting.report import ReportParams, build_report
from gistkv.stage import stage_errors

app = typer.Typer(add_completion=False)


@app.command()
def main(params: Path = Path("params.yaml"), metrics: Path = Path("metrics"), predictions: Path = Path("data/eval"),
         longbench: Path = Path("data/longbench"), out: Path = Path("metrics/report")) -> None:
    with stage_errors():
        settings = load_section(params, "report", ReportParams)
        summary = build_report(metrics, predictions, longbench, read_params(params), settings.targets, out)
        typer.echo(f"report written to {out}/report.md ({len(summary)} headline numbers)")


if __name__ == "__main__":
    app()
