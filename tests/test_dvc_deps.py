"""dvc.yaml's deps match what each stage runs: every package file a stage script imports (at any depth)
is a dependency, so changing it re-runs the stage; and the report's metric code is not a dependency of
training, so changing how a metric is computed never retrains a model."""

from pathlib import Path

import pytest
import yaml
from stage_imports import stage_files

REPO = Path(__file__).parent.parent


def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def listed_deps(stage: dict) -> set[str]:
    spec = stage.get("do", stage)
    return {dep if isinstance(dep, str) else next(iter(dep)) for dep in spec.get("deps", [])}


def script_of(stage: dict) -> str:
    command = stage.get("do", stage)["cmd"]
    return next(part for part in command.split() if part.startswith("stages/"))


@pytest.mark.parametrize("name", sorted(stages()))
def test_every_package_file_a_stage_runs_is_a_dependency(name):
    stage = stages()[name]
    missing = stage_files(script_of(stage)) - listed_deps(stage)
    assert not missing, f"dvc.yaml stage {name} misses deps {sorted(missing)}"
    assert script_of(stage) in listed_deps(stage)


def test_metric_and_report_code_do_not_retrain():
    training = listed_deps(stages()["train_gist"])
    assert not {"gistkv/evaluation/summaries.py", "gistkv/reporting/report.py", "gistkv/reporting/report_training.py", "gistkv/reporting/plots.py",
                "gistkv/data/ruler.py"} & training
    assert "gist" not in stages()["train_lora"]["params"]           # a gist variant never retrains the control
