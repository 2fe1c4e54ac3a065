"""Training on the tiny model: it runs, saves a loadable compressor, resumes, and runs under DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gistkv.core.compressor import load_compressor
from gistkv.core.kv import answer, compress
from gistkv.training.train import curve, train_compressor
from gistkv.training.train_config import GistParams, TrainParams

REPO = Path(__file__).parent.parent


def documents(count: int, start: int = 0) -> list[dict]:
    """Tiny NIAH-shaped documents (the fields training and evaluation read): a fact, a question about it and
    one about a fact the document does not hold."""
    found = []
    for i in range(start, start + count):
        key = str(10000 + 7 * i)
        found.append({"id": f"d{i}", "lang": "en", "split": "train", "group": "seen", "haystack": "tiny",
                      "target_tokens": 16, "context_tokens": 16,
                      "context": f"The grass is green. The pass key is {key}. The sky is blue.",
                      "facts": [{"family": "passkey", "name": "", "key": key, "needle": f"The pass key is {key}.",
                                 "depth": 0.5, "depth_bin": 0.5}],
                      "questions": [{"kind": "present", "family": "passkey", "name": "", "question": "What is the pass key?",
                                     "answer": key, "depth": 0.5, "depth_bin": 0.5},
                                    {"kind": "absent", "family": "order_number", "name": "",
                                     "question": "What is the order number?", "answer": "The document does not say.",
                                     "depth": None, "depth_bin": None}]})
    return found


def train_params(**change) -> TrainParams:
    values = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["train"]
    values.update(max_steps=4, save_steps=2, eval_steps=2, logging_steps=1, warmup_steps=0, validation_samples=2,
                  lora_r=4, lora_alpha=8, plateau_check_step=0, lr_scheduler_kwargs={"num_decay_steps": 2})
    values.update(change)
    return TrainParams(**values)


def stage_inputs(tmp_path: Path, **train_change) -> Path:
    """A params.yaml of the tiny English recipe (2 gist tokens) in tmp_path, with niah/en/{train,dev}.jsonl beside it."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["gist"]["num_tokens"] = 2
    params["train"].update(vars(train_params(langs=["en"], **train_change)))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    (tmp_path / "niah/en").mkdir(parents=True)
    (tmp_path / "niah/en/train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in documents(12)))
    (tmp_path / "niah/en/dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in documents(4, start=100)))
    return tmp_path / "params.yaml"


def test_train_saves_a_small_adapter_and_a_usable_compressor(tiny_base, tmp_path):
    result = train_compressor(tiny_base, documents(12), documents(2, 100), GistParams(num_tokens=3), train_params(),
                              tmp_path / "gist", tmp_path / "ckpt", tmp_path / "metrics")
    assert result["steps"] == 4 and result["train_tokens_seen"] > 0 and result["device"] == "cpu"
    meta = json.loads((tmp_path / "gist/compressor.json").read_text())
    assert meta["num_gist_tokens"] == 3 and len(meta["gist_token_ids"]) == 3 and meta["quantization"] == "none"
    from safetensors import safe_open

    with safe_open(str(tmp_path / "gist/adapter/adapter_model.safetensors"), "pt") as adapter:
        names = list(adapter.keys())
    # gist rows travel as trainable-token deltas, never as a whole embedding matrix
    assert any("trainable_tokens_delta" in name for name in names)
    assert not any(name.endswith("embed_tokens.weight") or "base_layer" in name for name in names)
    adapter_config = json.loads((tmp_path / "gist/adapter/adapter_config.json").read_text())
    assert adapter_config["target_modules"] == sorted(adapter_config["target_modules"])   # same params, same bytes
    assert meta["trained_context_tokens"] == 16 and meta["context_encoder"] == "base"
    compressor = load_compressor(tmp_path / "gist", base_dir=str(tiny_base))
    assert isinstance(answer(compressor, compress(compressor, "The pass key is 10007."), "What is it?", 3), str)


def test_the_control_trains_without_gist_tokens(tiny_base, tmp_path):
    """The tuned reader: the same LoRA on the same documents, no gist tokens, ordinary attention."""
    result = train_compressor(tiny_base, documents(6), documents(2, 100), GistParams(num_tokens=0),
                              train_params(max_steps=2, use_gist_mask=False), tmp_path / "lora", tmp_path / "ckpt",
                              tmp_path / "metrics")
    meta = json.loads((tmp_path / "lora/compressor.json").read_text())
    assert result["steps"] == 2 and meta["num_gist_tokens"] == 0 and meta["gist_token_ids"] == []
    assert meta["use_gist_mask"] is False
    from safetensors import safe_open

    with safe_open(str(tmp_path / "lora/adapter/adapter_model.safetensors"), "pt") as adapter:
        assert not any("trainable_tokens" in name for name in adapter.keys())
    # its held-out checks answer the dev documents from the whole context
    assert [step for step, _ in curve(result["history"], "val_accuracy")] == [0, 2]


def test_interrupted_training_resumes_from_the_last_checkpoint(tiny_base, tmp_path):
    args = (tiny_base, documents(12), documents(2, 100), GistParams(num_tokens=2), train_params())
    first = train_compressor(*args, tmp_path / "gist", tmp_path / "ckpt", tmp_path / "m", stop_after_steps=2)
    assert first == {"stopped_at_step": 2} and (tmp_path / "ckpt/checkpoint-2").exists()
    second = train_compressor(*args, tmp_path / "gist", tmp_path / "ckpt", tmp_path / "m")
    assert second["resumed_from"] == "checkpoint-2" and second["steps"] == 4
    # the resumed run reports the whole training time, not just its own session
    first = json.loads((tmp_path / "ckpt/checkpoint-2/gistkv_elapsed.json").read_text())
    assert second["train_wall_s"] >= first["train_s"] > 0
    # and its held-out checks (steps 0, 2 and 4 here), summed over both sessions, as a part of that time
    assert 0 < first["checks_s"] < second["held_out_checks_s"] < second["train_wall_s"]
    assert second["train_wall_s_without_checks"] == pytest.approx(second["train_wall_s"] - second["held_out_checks_s"],
                                                                  abs=0.11)
    # the held-out accuracy curve keeps the points measured before the interruption
    accuracy = curve(second["history"], "val_accuracy")
    assert [step for step, _ in accuracy] == [0, 2, 4] and all(0 <= value <= 1 for _, value in accuracy)
    # other inputs must not resume from these checkpoints
    third = train_compressor(tiny_base, documents(12), documents(2, 100), GistParams(num_tokens=3), train_params(),
                             tmp_path / "gist3", tmp_path / "ckpt", tmp_path / "m")
    assert third["resumed_from"] == ""


def run_stage(params: Path, tiny_base: Path, folder: Path, *options: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(REPO / "stages/train_gist.py"), "--params", str(params),
                           "--base", str(tiny_base), "--niah", str(folder / "niah"), "--out", str(folder / "gist"),
                           "--checkpoints", str(folder / "ckpt"), "--metrics", str(folder / "metrics"), *options],
                          capture_output=True, text=True, env=env, timeout=300, start_new_session=True)
    assert done.returncode == 0, done.stderr[-3000:]
    losses = (folder / "metrics/loss.tsv").read_text().splitlines()[1:]
    return {"train": json.loads((folder / "metrics/train.json").read_text()),
            "loss": {int(step): float(value) for step, value in (line.split("\t") for line in losses)}}


@pytest.mark.slow
def test_two_cpu_processes_ddp_learn_what_one_process_learns_from_the_same_global_batch(tiny_base, tmp_path):
    """2 DDP ranks of batch 1 see the documents one process of batch 2 sees; the custom loss, scaled back by
    the world size, logs the same loss (without the scaling it would be half)."""
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    two = run_stage(stage_inputs(tmp_path / "two", num_processes=2), tiny_base, tmp_path / "two")
    one = run_stage(stage_inputs(tmp_path / "one", batch_size=2), tiny_base, tmp_path / "one")
    assert two["train"]["num_processes"] == 2 and two["train"]["steps"] == one["train"]["steps"] == 4
    assert (tmp_path / "two/gist/compressor.json").exists()
    for step in (1, 2):
        assert two["loss"][step] == pytest.approx(one["loss"][step], rel=2e-3), step


def test_plateau_check_reads_the_mean_logged_loss_of_its_window():
    from gistkv.training.plateau import stuck_loss, window_loss

    history = [{"step": step, "loss": loss} for step, loss in ((10, 3.0), (20, 1.5), (30, 1.3), (40, 1.1))]
    history.append({"step": 40, "eval_loss": 9.0})                      # evaluations are not training losses
    assert window_loss(history, 40, 20) == pytest.approx(1.2) and window_loss(history, 5, 5) is None
    assert stuck_loss(history, train_params(plateau_check_step=40, plateau_window=20, plateau_loss=1.1)) == \
        pytest.approx(1.2)
    assert stuck_loss(history, train_params(plateau_check_step=40, plateau_window=20, plateau_loss=1.25)) is None
    assert stuck_loss(history, train_params(plateau_check_step=0, plateau_window=20, plateau_loss=0.0)) is None


def test_a_run_on_the_plateau_at_the_check_restarts_with_the_next_seed(tiny_base, tmp_path):
    """plateau_loss -1: every attempt counts as stuck, so the guard restarts until its budget is spent."""
    args = (tiny_base, documents(12), documents(2, 100), GistParams(num_tokens=2))
    stuck = train_params(seed=7, plateau_check_step=2, plateau_window=2, plateau_loss=-1.0, plateau_restarts=1)
    result = train_compressor(*args, stuck, tmp_path / "gist", tmp_path / "ckpt", tmp_path / "m")
    assert result["seed"] == 1007 and result["steps"] == 4
    [given_up] = result["plateau_restarts"]
    assert given_up["seed"] == 7 and given_up["loss"] > 0
    assert result["train_wall_s"] >= given_up["train_s"] > 0    # the given-up attempt's time is counted
    assert (tmp_path / "gist/compressor.json").exists()
    # the last attempt's curves only: one initial point, then the held-out checks at steps 2 and 4
    assert [step for step, _ in curve(result["history"], "val_accuracy")] == [0, 2, 4]


def test_resuming_re_makes_the_plateau_decision_from_the_logged_losses(tiny_base, tmp_path):
    args = (tiny_base, documents(12), documents(2, 100), GistParams(num_tokens=2))
    outputs = (tmp_path / "gist", tmp_path / "ckpt", tmp_path / "m")
    unguarded = train_compressor(*args, train_params(plateau_check_step=0), *outputs)
    assert unguarded["seed"] == 42 and unguarded["plateau_restarts"] == []
    # same recipe with the guard on: resumes the finished run, finds it stuck at step 2, restarts
    guarded = train_params(plateau_check_step=2, plateau_window=2, plateau_loss=-1.0, plateau_restarts=1)
    restarted = train_compressor(*args, guarded, *outputs)
    assert restarted["seed"] == 1042 and restarted["resumed_from"] == ""
    assert [entry["seed"] for entry in restarted["plateau_restarts"]] == [42]
    # a threshold that would not have restarted seed 42: the recorded restart is void, start clean
    lenient = train_params(plateau_check_step=2, plateau_window=2, plateau_loss=100.0, plateau_restarts=1)
    clean = train_compressor(*args, lenient, *outputs)
    assert clean["seed"] == 42 and clean["plateau_restarts"] == [] and clean["resumed_from"] == ""
    # and a passing run resumed with the guard on keeps its checkpoint
    again = train_compressor(*args, lenient, *outputs)
    assert again["seed"] == 42 and again["resumed_from"] == "checkpoint-4"


def test_onset_screen_trains_the_first_steps_of_each_seed(tiny_base, tmp_path):
    from gistkv.tools.bench import onset

    params = stage_inputs(tmp_path, plateau_window=2)
    rows = onset(tiny_base, tmp_path / "niah", params, [1, 2], steps=2, workdir=tmp_path, at=[2])
    assert [row["seed"] for row in rows] == [1, 2] and all(row["loss@2"] > 0 for row in rows)
    assert rows[0]["loss@2"] != rows[1]["loss@2"]                    # another seed, another start
    assert not list(tmp_path.glob("onset-*"))                        # its scratch training is cleaned up


def test_a_curriculum_cut_short_says_which_documents_it_never_read(tiny_base, tmp_path, caplog):
    """Length-sorted and stopped before the pass ends, a run never reads its longest documents: the run warns,
    train metrics count what it read, and the compressor's trained length is the longest it read."""
    long = documents(4, start=50)
    for document in long:
        document["context"] += " The sea is wide and the hills are far away." * 3
        document["context_tokens"] = 48
    result = train_compressor(tiny_base, long + documents(4), documents(2, 100), GistParams(num_tokens=2),
                              train_params(max_steps=4), tmp_path / "gist", tmp_path / "ckpt", tmp_path / "metrics")
    assert (result["documents_read"], result["documents"], result["longest_context_read"]) == (4, 8, 16)
    assert json.loads((tmp_path / "gist/compressor.json").read_text())["trained_context_tokens"] == 16
    assert "reads 4 of 8 training documents" in caplog.text and "none longer than 16 tokens" in caplog.text
