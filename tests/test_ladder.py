"""The ladder (train.ladder, niah.ladder): rungs trained in turn, each from the last, then the main run."""

import json

import pytest
from test_train import documents, run_stage, stage_inputs, train_params

from gistkv.errors import GistkvError
from gistkv.params import from_mapping
from gistkv.training.ladder import climb
from gistkv.training.train_config import GistParams, TrainParams


def write_rungs(niah_dir, counts: list[int]) -> None:
    rows = [dict(document, rung=rung) for rung, count in enumerate(counts, start=1)
            for document in documents(count, start=200 * rung)]
    (niah_dir / "en/ladder.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_the_stage_climbs_each_rung_from_the_last_then_trains_from_the_top_and_resumes(tiny_base, tmp_path):
    params = stage_inputs(tmp_path, ladder=[{"max_steps": 2}, {"max_steps": 3, "learning_rate": 0.02}])
    write_rungs(tmp_path / "niah", [6, 4])
    first = run_stage(params, tiny_base, tmp_path)["train"]
    rungs = first["ladder"]
    assert [(rung["rung"], rung["documents"], rung["steps"]) for rung in rungs] == [(1, 6, 2), (2, 4, 3)]
    # each run reads the same dev documents first through the adapter the run before it ended with
    assert rungs[1]["eval_loss_initial"] == pytest.approx(rungs[0]["eval_loss_final"], abs=1e-4)
    assert first["eval_loss_initial"] == pytest.approx(rungs[1]["eval_loss_final"], abs=1e-4)
    assert first["steps"] == 4 and first["resumed_from"] == ""
    assert first["train_wall_s_with_ladder"] == pytest.approx(
        first["train_wall_s"] + sum(rung["train_wall_s"] for rung in rungs), abs=0.2)
    assert (tmp_path / "ckpt/ladder/rung2/compressor/compressor.json").exists()   # kept when the main run started clean
    again = run_stage(params, tiny_base, tmp_path)["train"]      # nothing changed: every run resumes where it ended
    assert all(rung["resumed_from"] for rung in again["ladder"]) and again["resumed_from"]
    assert again["eval_loss_final"] == pytest.approx(first["eval_loss_final"], abs=1e-6)
    # another first rung: the rung above it and the main run start from it afresh, not from their old checkpoints
    (tmp_path / "other").mkdir()
    params = stage_inputs(tmp_path / "other", ladder=[{"max_steps": 2, "learning_rate": 0.05},
                                                      {"max_steps": 3, "learning_rate": 0.02}])
    params.replace(tmp_path / "params.yaml")
    changed = run_stage(tmp_path / "params.yaml", tiny_base, tmp_path)["train"]
    assert [rung["resumed_from"] for rung in changed["ladder"]] == ["", ""] and changed["resumed_from"] == ""
    assert changed["ladder"][0]["eval_loss_final"] != pytest.approx(rungs[0]["eval_loss_final"], abs=1e-4)


def test_the_control_climbs_the_same_ladder_without_gist_tokens(tiny_base, tmp_path):
    # gist_view: chunks and gist_read: routed belong to the gist; the control drops them for its rungs as for its run
    params = stage_inputs(tmp_path, ladder=[{"max_steps": 2}], gist_view="chunks", gist_read="routed")
    write_rungs(tmp_path / "niah", [4])
    control = run_stage(params, tiny_base, tmp_path, "--control")["train"]
    assert [(rung["rung"], rung["steps"]) for rung in control["ladder"]] == [(1, 2)] and control["steps"] == 4
    meta = json.loads((tmp_path / "ckpt/ladder/rung1/compressor/compressor.json").read_text())
    assert meta["num_gist_tokens"] == 0 and meta["use_gist_mask"] is False and meta["gist_read"] == "all"


@pytest.mark.parametrize("change, message", [
    ({"ladder": [{"lora_r": 8}]}, "train.ladder.0.lora_r: is the same on every rung"),
    ({"ladder": [{}, {"max_step": 3}]}, "train.ladder.1.max_step: unknown key"),
    ({"ladder": [{"max_steps": 0}]}, "train.ladder.0.max_steps: must be >= 1"),
    ({"ladder": [{}], "num_processes": 2}, "train.ladder: needs num_processes: 1"),
    ({"ladder": [{"validation_samples": 8}]}, "train.ladder.0.validation_samples: is the same on every rung"),
    ({"ladder": [{"max_steps": 1}]}, r"train.ladder.0.lr_scheduler_kwargs.num_decay_steps: warmup_steps \+ "
                                     r"num_decay_steps \(0 \+ 2\) must fit in max_steps=1"),
    ({"max_steps": 3, "lr_scheduler_kwargs": {"num_decay_steps": 4}}, "train.lr_scheduler_kwargs.num_decay_steps"),
])
def test_a_bad_rung_is_a_one_line_error_naming_it(change, message):
    with pytest.raises(GistkvError, match=message) as raised:
        from_mapping(TrainParams, vars(train_params(**change)), "train")
    assert "\n" not in str(raised.value)


def test_rungs_without_their_steps_or_steps_without_rungs_are_refused_before_training(tmp_path):
    run = (tmp_path / "no-base", )       # no model is loaded: the count is checked first
    with pytest.raises(GistkvError, match=r"train.ladder: 0 rung\(s\), but ladder.jsonl holds 1"):
        climb(*run, [documents(2)], documents(2, 100), GistParams(num_tokens=2), train_params(), tmp_path / "ckpt")
    with pytest.raises(GistkvError, match=r"train.ladder: 1 rung\(s\), but ladder.jsonl holds 0"):
        climb(*run, [], documents(2, 100), GistParams(num_tokens=2), train_params(ladder=[{}]), tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()
