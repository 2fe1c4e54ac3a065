"""The whole DVC pipeline on a tiny profile: a fresh copy of the repo, `dvc repro` twice, then a variant.

Uses a tiny random Llama saved to a local folder (model.source accepts a folder), so the DAG runs
end to end in a few minutes; the second `dvc repro` must find nothing to do, and `dvc exp run -S
gist.num_tokens=3` must retrain gist alone (not its control) and re-run only what reads it.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).parent.parent


def run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1500,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:" + os.environ["PATH"]})
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def tiny_profile(params: dict, model_dir: Path) -> dict:
    params["model"].update(source=str(model_dir), device="cpu")
    params["download_longbench"].update(source="http://127.0.0.1:9/data.zip", timeout_s=2)   # offline on purpose
    niah = params["niah"]
    niah["tolerance"] = 0.03          # the byte-level tiny tokenizer cannot always land Korean exactly
    niah["train"].update(context_lengths=[192], samples_per_length=[6])
    niah["dev"].update(context_lengths=[448], samples_per_length=[4], num_other_facts=1)
    niah["test"].update(context_lengths=[448, 512], samples_per_length=[4, 4], num_depths=2, num_other_facts=1)
    params["ruler"].update(tasks=["niah_single_1", "qa_1"], context_lengths=[512], samples_per_length=[1],
                           max_new_tokens=4)
    params["gist"]["num_tokens"] = 2
    params["train"].update(max_steps=2, validation_samples=2, eval_steps=1, save_steps=1, logging_steps=1,
                           warmup_steps=0, lora_r=2, lora_alpha=4, lr_scheduler_kwargs={"num_decay_steps": 1})
    params["evaluate"].update(max_new_tokens=3)
    params["evaluate"]["rag"]["budgets"] = [{"chunk_tokens": 16, "top_k": 1}, {"chunk_tokens": 32, "top_k": 2}]
    params["evaluate"]["ruler_methods"] = ["full/base", "rag64/tuned", "gist", "gist/empty"]
    params["evaluate_longbench"]["methods"] = ["full/base", "rag64/base", "gist"]
    return params


@pytest.mark.slow
def test_dvc_repro_tiny_profile_end_to_end(tmp_path):
    from tiny import save_tiny_model

    work = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if name == "dvc.lock" or name.startswith("metrics/") or not (REPO / name).exists():
            continue
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, work / name)
    model_dir = save_tiny_model(tmp_path / "tiny-llama")
    params = tiny_profile(yaml.safe_load((work / "params.yaml").read_text(encoding="utf-8")), model_dir)
    (work / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    run(["git", "init", "-q"], work)
    run(["git", "add", "-A"], work)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "tiny"], work)

    run([sys.executable, "-m", "dvc", "repro"], work)
    for dataset in ("niah_dev_en", "niah_test_ko"):
        for group, method in (("baselines", "full-base"), ("baselines", "full-tuned"), ("baselines", "rag16-base"),
                              ("baselines", "rag64-tuned"), ("gist", "gist"), ("gist", "gist-empty")):
            assert (work / f"metrics/eval/{group}/{dataset}/{method}.json").exists(), (dataset, method)
    assert sorted(path.stem for path in (work / "metrics/eval").glob("*/ruler/*.json")) == [
        "full-base", "gist", "gist-empty", "rag64-tuned"]
    report = (work / "metrics/report/report.md").read_text()
    assert "not evaluated (offline" in report and "## RULER" in report and "McNemar" in report
    lock = (work / "dvc.lock").read_text()
    # Each stored gist file names the text it compressed: the evaluation's context text.
    from gistkv.io import read_jsonl
    from gistkv.core.kv import GistKV, text_sha256
    from gistkv.evaluation.methods import context_text

    document = read_jsonl(work / "data/niah/ko/test.jsonl")[0]
    stored = GistKV.load(work / f"data/gist_kv/niah_test_ko/{document['id']}.safetensors")
    assert stored.metadata["source_sha256"] == text_sha256(context_text(document))

    again = run([sys.executable, "-m", "dvc", "repro"], work)
    assert "Data and pipelines are up to date" in again, again
    assert (work / "dvc.lock").read_text() == lock
    status = run([sys.executable, "-m", "dvc", "status"], work)
    assert "up to date" in status

    # A gist variant retrains gist alone; the control (no gist tokens) and the data are reused.
    run(["git", "add", "-A"], work)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "first run"], work)
    experiment = run([sys.executable, "-m", "dvc", "exp", "run", "-S", "gist.num_tokens=3"], work)
    reran = {line.split("'")[1] for line in experiment.splitlines() if line.startswith("Running stage")}
    assert "train_gist" in reran and "train_lora" not in reran and not any(s.startswith("make_") for s in reran), reran
    # ... and re-evaluates the gist group alone: the baselines read nothing that changed.
    assert "evaluate_gist@niah_test_en" in reran and not any(s.startswith("evaluate_baselines") for s in reran), reran
    diff = run([sys.executable, "-m", "dvc", "metrics", "diff"], work)
    assert "niah_test_en" in diff and "gist" in diff, diff
