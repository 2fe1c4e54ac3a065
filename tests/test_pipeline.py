"""The whole DVC pipeline on a tiny profile: a fresh copy of the repo, `dvc repro` twice.

Uses a tiny random Llama saved to a local folder (model.source accepts a folder), so the DAG
runs end to end in about a minute; the second `dvc repro` must find nothing to do.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).parent.parent


def run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**__import__("os").environ, "PATH": f"{Path(sys.executable).parent}:" + __import__("os").environ["PATH"]})
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def tiny_profile(params: dict, model_dir: Path) -> dict:
    params["model"].update(source=str(model_dir), device="cpu")
    params["download_longbench"].update(source="http://127.0.0.1:9/data.zip", timeout_s=2)   # offline on purpose
    params["niah"]["splits"]["train"].update(samples=10, context_lengths=[256], num_distractors=1)
    params["niah"]["splits"]["eval"].update(samples=4, context_lengths=[256, 320], num_depths=2, num_distractors=1)
    params["gist"]["num_tokens"] = 2
    params["train"].update(max_steps=2, validation_samples=2, eval_steps=1, save_steps=1, logging_steps=1,
                           warmup_steps=0, lora_r=2, lora_alpha=4, plateau_check_step=1, plateau_window=1,
                           plateau_loss=1000.0)   # the check runs (and passes): the DAG's path, not a restart
    params["evaluate"].update(max_new_tokens=3, warmup_samples=0, rag_chunk_tokens=48, rag_chunk_overlap=8)
    return params


@pytest.mark.slow
def test_dvc_repro_tiny_profile_end_to_end(tmp_path):
    from tiny import save_tiny_model

    work = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if name == "dvc.lock" or not (REPO / name).exists():
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
    for method in ("full", "rag", "gist", "lora"):
        for lang in ("en", "ko"):
            assert (work / f"metrics/eval/{method}_niah_{lang}.json").exists()
    assert (work / "metrics/summary.json").exists() and (work / "metrics/report/report.md").exists()
    assert "not evaluated (offline" in (work / "metrics/report/report.md").read_text()
    lock = (work / "dvc.lock").read_text()
    # Each stored gist file names the text it compressed: the evaluation's context text.
    from gistkv.io import read_jsonl
    from gistkv.kv import GistKV, text_sha256
    from gistkv.methods import record_context_text

    record = read_jsonl(work / "data/niah/ko/eval.jsonl")[0]
    stored = GistKV.load(work / f"data/gist_kv/niah_ko/{record['id']}.safetensors")
    assert stored.metadata["source_sha256"] == text_sha256(record_context_text(record))

    again = run([sys.executable, "-m", "dvc", "repro"], work)
    assert "Data and pipelines are up to date" in again, again
    assert (work / "dvc.lock").read_text() == lock
    status = run([sys.executable, "-m", "dvc", "status"], work)
    assert "up to date" in status

    # A variant re-runs only the compressor and what reads it; full/rag results are reused.
    run(["git", "add", "-A"], work)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "first run"], work)
    full_before = (work / "metrics/eval/full_niah_en.json").read_text()
    experiment = run([sys.executable, "-m", "dvc", "exp", "run", "-S", "gist.num_tokens=3"], work)
    reran = {line.split("'")[1] for line in experiment.splitlines() if line.startswith("Running stage")}
    # (the lora control re-runs too: it carries the same gist tokens, only without the mask)
    assert reran == {"train_gist", "train_lora", "extract_gist_kv", "evaluate@gist-niah_en", "evaluate@gist-niah_ko",
                     "evaluate@lora-niah_en", "evaluate@lora-niah_ko", "evaluate_longbench", "report"}, reran
    assert (work / "metrics/eval/full_niah_en.json").read_text() == full_before
    diff = run([sys.executable, "-m", "dvc", "metrics", "diff"], work)
    assert "gist.niah_en.compression_ratio" in diff, diff
