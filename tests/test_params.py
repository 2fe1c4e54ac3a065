import dataclasses

import pytest

from gistkv.core.model import ModelParams
from gistkv.errors import GistkvError
from gistkv.params import from_mapping, load_section

GOOD = {"source": "embedded", "embedded_package": "p==1", "embedded_gguf": "a/b.gguf", "embedded_sha256": "0",
        "dtype": "float32", "load_in_4bit": False, "device": "auto"}


def test_repo_params_load():
    assert load_section("params.yaml", "model", ModelParams).source == "embedded"


@pytest.mark.parametrize("change, message", [
    ({"colour": 1}, "model.colour: unknown key"),
    ({"dtype": "float8"}, "model.dtype: must be one of"),
    ({"load_in_4bit": "yes"}, "model.load_in_4bit: Input should be a valid boolean, got 'yes'"),
    ({"device": "tpu"}, "model.device: must be auto, cpu or cuda"),
])
def test_bad_values_name_the_key(change, message):
    with pytest.raises(GistkvError, match=message):
        from_mapping(ModelParams, {**GOOD, **change}, "model")


def test_missing_key_is_named():
    mapping = dict(GOOD)
    del mapping["dtype"]
    with pytest.raises(GistkvError, match="model.dtype: missing in params"):
        from_mapping(ModelParams, mapping, "model")


def test_missing_section_and_bad_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: {}\n")
    with pytest.raises(GistkvError, match="section 'model' missing"):
        load_section(path, "model", ModelParams)
    path.write_text("model: [unclosed\n")
    with pytest.raises(GistkvError, match="not valid YAML"):
        load_section(path, "model", ModelParams)


def test_optional_train_keys_default_and_are_checked():
    """``use_gist_mask`` and ``lr_scheduler_kwargs`` may be left out of params.yaml; given, they are typed."""
    from gistkv.training.train import TrainParams

    train = load_section("params.yaml", "train", TrainParams)
    assert train.use_gist_mask is True and isinstance(train.lr_scheduler_kwargs, dict)
    mapping = dataclasses.asdict(train)
    del mapping["use_gist_mask"], mapping["lr_scheduler_kwargs"]
    assert from_mapping(TrainParams, mapping, "train").lr_scheduler_kwargs == {}
    with pytest.raises(GistkvError, match="train.lr_scheduler_kwargs: Input should be a mapping, got 300"):
        from_mapping(TrainParams, {**mapping, "lr_scheduler_kwargs": 300}, "train")


@pytest.mark.parametrize("change, message", [
    ({"context_autocast": "float8"}, "train.context_autocast: must be one of none, bfloat16"),
    ({"context_autocast": "bfloat16", "context_encoder": "adapted"},
     "train.context_autocast: 'bfloat16' needs context_encoder: base"),
    ({"plateau_check_step": 5000}, "train.plateau_check_step: must be 0 \\(off\\) or a step before max_steps"),
    ({"plateau_check_step": 405}, "train.plateau_check_step: must be a multiple of logging_steps=10"),
    ({"plateau_window": 5}, "train.plateau_window: must cover at least one logged loss"),
    ({"plateau_restarts": -1}, "train.plateau_restarts: must be >= 0"),
    # the bad inputs of issue 33: each one line naming the key, before any model loads
    ({"logging_steps": 0}, "train.logging_steps: must be >= 1, got 0"),
    ({"validation_samples": 0}, "train.validation_samples: must be >= 1, got 0"),
    ({"lr_scheduler": "cosin"}, "train.lr_scheduler: must be one of constant, .*, got 'cosin'"),
    ({"target_modules": ["q_proj", "qproj"]}, "train.target_modules.1: Input should be 'q_proj', .*, got 'qproj'"),
    ({"lora_r": 0}, "train.lora_r: must be >= 1, got 0"),
    ({"warmup_steps": -5}, "train.warmup_steps: warmup_steps and weight_decay must be >= 0"),
    ({"max_steps": "1000"}, "train.max_steps: Input should be a valid integer, got '1000'"),
    ({"learning_rate": True}, "train.learning_rate: Input should be a valid number, got True"),
    ({"langs": "en"}, "train.langs: Input should be a list, got 'en'"),
    ({"lerning_rate": 1e-3}, "train.lerning_rate: unknown key \\(known: batch_size, .*\\)"),
])
def test_train_switches_are_checked(change, message):
    from gistkv.training.train import TrainParams

    mapping = {**dataclasses.asdict(load_section("params.yaml", "train", TrainParams)), **change}
    with pytest.raises(GistkvError, match=message):
        from_mapping(TrainParams, mapping, "train")


def test_unknown_key_in_a_nested_section_names_its_own_keys():
    from gistkv.data.niah_params import NiahParams
    from gistkv.params import read_params

    niah = read_params("params.yaml")["niah"]
    lang = next(iter(niah["languages"]))
    niah["languages"][lang]["train_source"] = ["pydoc"]
    with pytest.raises(GistkvError, match=f"niah.languages.{lang}.train_source: unknown key \\(known: names, "):
        from_mapping(NiahParams, niah, "niah")


def test_strict_types_keep_what_params_yaml_means():
    """An int where a float is declared is still that number, as a float (yaml has no 1.0e-3 vs 1e-3 issue)."""
    from gistkv.training.train import TrainParams

    mapping = {**dataclasses.asdict(load_section("params.yaml", "train", TrainParams)), "learning_rate": 1}
    learning_rate = from_mapping(TrainParams, mapping, "train").learning_rate
    assert learning_rate == 1.0 and isinstance(learning_rate, float)


@pytest.mark.parametrize("change, message", [
    ({"embedder": "bm25"}, "evaluate.rag.embedder: must be one of"),
    ({"budgets": [{"chunk_tokens": 16}]}, "evaluate.rag.budgets\\[0\\]: must be \\{chunk_tokens"),
    ({"budgets": [{"chunk_tokens": 16, "top_k": 2}, {"chunk_tokens": 32, "top_k": 1}]},
     "evaluate.rag.budgets: must differ in chunk_tokens x top_k"),
])
def test_a_nested_section_runs_its_own_checks(change, message):
    from gistkv.evaluation.evaluate import EvaluateParams
    from gistkv.params import read_params

    evaluate = read_params("params.yaml")["evaluate"]
    evaluate["rag"].update(change)
    with pytest.raises(GistkvError, match=message):
        from_mapping(EvaluateParams, evaluate, "evaluate")


def test_a_misspelt_key_is_named_not_the_missing_one():
    from gistkv.training.train import TrainParams

    mapping = dataclasses.asdict(load_section("params.yaml", "train", TrainParams))
    mapping["lerning_rate"] = mapping.pop("learning_rate")
    with pytest.raises(GistkvError, match="train.lerning_rate: unknown key"):
        from_mapping(TrainParams, mapping, "train")


def test_what_yaml_reads_but_json_cannot_hold_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("model:\n  source: 2024-01-01\n")
    with pytest.raises(GistkvError, match="model.source: YAML read datetime.date\\(2024, 1, 1\\) as a date; quote it"):
        load_section(path, "model", ModelParams)
    path.write_text("niah:\n  families: {no: [passkey]}\n")
    from gistkv.data.niah_params import NiahParams
    with pytest.raises(GistkvError, match="niah.families.False: a key must be a string"):
        load_section(path, "niah", NiahParams)
