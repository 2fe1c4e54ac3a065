"""gistkv bench-step: it runs the recipe's training step and says which length it lacks."""

from typer.testing import CliRunner
from test_train import stage_inputs

from gistkv.cli import app


def test_bench_step_times_each_context_length_and_names_a_missing_one(tiny_base, tmp_path):
    params = stage_inputs(tmp_path)           # tiny records of 16 tokens in tmp_path/niah/en
    args = ["bench-step", "--params", str(params), "--base", str(tiny_base), "--niah", str(tmp_path / "niah"),
            "--steps", "2"]
    done = CliRunner().invoke(app, args + ["--lengths", "16"])
    assert done.exit_code == 0, done.output
    row = done.output.strip().splitlines()[-1]      # (after the model loader's progress bar)
    assert "context_tokens=16  steps=2  step_s=" in row and float(row.rsplit("=", 1)[1]) > 0

    missing = CliRunner().invoke(app, args + ["--lengths", "16,512"])
    assert missing.exit_code == 1
    assert "no training records of 512 tokens" in missing.output and "Traceback" not in missing.output
