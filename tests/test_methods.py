"""Methods by name (MethodBuilder) and the plain-LoRA control, on a tiny trained pair of models."""

import importlib.util
from pathlib import Path

import pytest
import torch
from test_train import records, train_params

from gistkv.compressor import ContextRead
from gistkv.errors import GistkvError
from gistkv.evaluate import EvaluateParams, evaluate_method
from gistkv.methods import Gist, LoraControl, MethodBuilder, OnTheFlyGist
from gistkv.train import GistParams, train_compressor
from gistkv.trainer import tail_logits

REPO = Path(__file__).parent.parent
SETTINGS = EvaluateParams(max_new_tokens=3, warmup_samples=0, rag_chunk_tokens=16, rag_chunk_overlap=4, rag_top_k=1,
                          embedder_package="unused", torch_threads=1)


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    """A gist compressor and its control, trained on the same tiny records (2 steps each)."""
    root = tmp_path_factory.mktemp("trained")
    for name, masked in (("gist", True), ("lora", False)):
        train_compressor(tiny_base, records(6), GistParams(num_tokens=2),
                         train_params(max_steps=2, save_steps=2, eval_steps=2, use_gist_mask=masked),
                         root / name, root / f"{name}_ckpt", root / f"{name}_metrics")
    return MethodBuilder(tiny_base, root / "gist", root / "lora", SETTINGS), root


def load_stage(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def niah_record(index: int) -> dict:
    return records(index + 1)[index]


def test_unknown_method_is_a_one_line_error(trained):
    builder, root = trained
    with pytest.raises(GistkvError, match="method 'bm25': unknown \\(known: full, rag, gist, lora\\)"):
        builder.build("bm25", rag_index_dir=root / "idx", collection="c")


def test_control_and_compressor_are_not_interchangeable(trained):
    builder, root = trained
    assert isinstance(builder.build("lora", rag_index_dir=root / "idx", collection="c"), LoraControl)
    assert isinstance(builder.build("gist", rag_index_dir=root / "idx", collection="c"), OnTheFlyGist)
    swapped = MethodBuilder(builder.base_dir, root / "lora", root / "gist", SETTINGS)
    with pytest.raises(GistkvError, match="use_gist_mask is False; expected a gist compressor"):
        swapped.build("gist", rag_index_dir=root / "idx", collection="c")
    with pytest.raises(GistkvError, match="use_gist_mask is True; expected the plain-LoRA control"):
        swapped.build("lora", rag_index_dir=root / "idx", collection="c")


@pytest.mark.parametrize("meta, message", [
    ({"context_encoder": "frozen"}, "compressor.json: context_encoder 'frozen' is not one of adapted, base"),
    ({"context_encoder": "base", "context_autocast": "float8"},
     "compressor.json: context_autocast 'float8' is not one of none, bfloat16"),
])
def test_a_compressor_json_with_an_unknown_context_read_is_refused(meta, message):
    with pytest.raises(GistkvError, match=message):
        ContextRead.from_meta(meta, Path("models/gist/compressor.json"))
    # a compressor.json from before these fields reads the context as it was trained then
    assert ContextRead.from_meta({}, Path("compressor.json")) == ContextRead("adapted", "none")


@pytest.mark.parametrize("name", ["gist", "lora"])
def test_methods_answer_with_the_training_layout(trained, name):
    """Evaluation reads a context the way training did (train.context_encoder: base, the params.yaml
    default: context through the base model, adapter off), so the first answer token is the argmax
    of the training forward's logits."""
    builder, root = trained
    method = builder.build(name, rag_index_dir=root / "idx", collection="c")
    compressor = method.compressor
    # Loaded for answering: merged adapter + a copy of the base weights for the context, read with
    # the training's context_autocast (params.yaml: bfloat16).
    assert compressor.context_read.encoder == "base" and compressor.context_model is not None
    assert compressor.context_read == train_params().context_read
    record = niah_record(1)
    from gistkv.compressor import load_compressor
    from gistkv.prompt import encode, query_text

    unmerged = load_compressor(root / name, merge=False, gist_mask=name == "gist")     # the training model's shape
    assert unmerged.context_model is None
    context = torch.tensor(encode(method.tokenizer, record["context"]))
    tail = torch.tensor(compressor.gist_ids + encode(method.tokenizer, query_text(record["question"], record["answer_prefix"])))
    with torch.no_grad():
        logits = tail_logits(unmerged.model, context, tail, len(compressor.gist_ids), torch.float32,
                             use_gist_mask=name == "gist", context_autocast=compressor.context_read.autocast)
    if name == "gist":
        method.prepare(record)
    assert method.answer(record, max_new_tokens=1).token_ids[:1] == [int(logits[-1].argmax())]
    predictions, metrics = evaluate_method(method, [niah_record(0), record], max_new_tokens=3, warmup_samples=0)
    assert metrics["n"] == 2 and len(predictions) == 2
    assert metrics["compression_ratio"] == (1.0 if name == "lora" else metrics["compression_ratio"])
    assert metrics["n_passkey"] == 2 and 0 <= metrics["accuracy_passkey_ci_low"] <= metrics["accuracy_passkey_ci_high"] <= 1


def test_gist_from_stored_artifacts_needs_a_manifest(trained):
    builder, root = trained
    with pytest.raises(GistkvError, match="manifest.json"):
        builder.build("gist", rag_index_dir=root / "idx", collection="c", gist_kv_dir=root / "no-kv")
    (root / "kv").mkdir()
    (root / "kv/manifest.json").write_text("{}")
    assert isinstance(builder.build("gist", rag_index_dir=root / "idx", collection="c", gist_kv_dir=root / "kv"), Gist)


def test_longbench_stage_runs_every_method_on_downloaded_tasks(trained, tmp_path):
    """The 'available' branch of stages/evaluate_longbench.py on a two-record task (rag needs the
    MiniLM embedder and is covered in test_rag.py)."""
    import json

    import yaml
    from typer.testing import CliRunner

    builder, root = trained
    longbench = tmp_path / "longbench"
    longbench.mkdir()
    (longbench / "status.json").write_text(json.dumps({"status": "available", "tasks": ["multifieldqa_en"]}))
    rows = [{"input": "Who wrote it?", "context": "Alice wrote the report in 2020. " * 12, "answers": ["Alice"],
             "_id": f"x{i}"} for i in range(2)]
    (longbench / "multifieldqa_en.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["evaluate_longbench"].update(methods=["full", "gist", "lora"], max_samples=2, max_context_tokens=48)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    stage = load_stage("evaluate_longbench")
    args = ["--params", str(tmp_path / "params.yaml"), "--longbench", str(longbench), "--base", str(builder.base_dir),
            "--gist", str(root / "gist"), "--lora", str(root / "lora"), "--out", str(tmp_path / "out"),
            "--rag-index", str(tmp_path / "idx"), "--metrics", str(tmp_path / "longbench.json")]
    done = CliRunner().invoke(stage.app, args)
    assert done.exit_code == 0, done.output
    scores = json.loads((tmp_path / "longbench.json").read_text())
    assert scores["evaluated"] == 1 and set(scores) == {"evaluated", "full.multifieldqa_en.score",
                                                        "gist.multifieldqa_en.score", "lora.multifieldqa_en.score"}
    assert all(0 <= value <= 100 for key, value in scores.items() if key != "evaluated")
    assert len((tmp_path / "out/gist_multifieldqa_en.jsonl").read_text().splitlines()) == 2
    params["evaluate_longbench"]["methods"] = ["full", "bm25"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    refused = CliRunner().invoke(stage.app, args)
    assert refused.exit_code == 1 and "evaluate_longbench.methods: unknown ['bm25']" in refused.output
