"""Methods by name (MethodBuilder) and the plain-LoRA control, on a tiny trained pair of models."""

import pytest
import torch
from test_train import records, train_params

from gistkv.errors import GistkvError
from gistkv.evaluate import EvaluateParams, evaluate_method
from gistkv.gist import GistCollator
from gistkv.methods import Gist, LoraControl, MethodBuilder, OnTheFlyGist
from gistkv.train import GistParams, train_compressor

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


def niah_record(index: int) -> dict:
    record = records(index + 1)[index]
    return dict(record, id=f"r{index}", lang="en", variant="passkey", haystack="tiny", target_tokens=32,
                context_tokens=len(record["context"].split()), depth=0.5, depth_bin=0.5)


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


def test_control_reads_the_training_layout_and_evaluates(trained):
    builder, root = trained
    control = builder.build("lora", rag_index_dir=root / "idx", collection="c")
    record = niah_record(1)
    # Evaluation feeds the control exactly the tokens it was trained on (context, gist, query), with
    # the ordinary causal attention of its training collator: same next-token logits.
    ids = control.prompt_ids(record)
    from gistkv.prompt import encode, query_text

    example = {"context_ids": encode(control.tokenizer, record["context"]), "answer_ids": [],
               "query_ids": encode(control.tokenizer, query_text(record["question"], record["answer_prefix"]))}
    batch = GistCollator(control.gist_ids, control.tokenizer.pad_token_id, use_gist_mask=False)([example])
    assert batch["input_ids"][0].tolist() == ids
    with torch.no_grad():
        one_pass = control.model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0, -1]
        plain = control.model(input_ids=torch.tensor([ids])).logits[0, -1]
    assert torch.allclose(one_pass, plain, atol=1e-5)
    predictions, metrics = evaluate_method(control, [niah_record(0), record], max_new_tokens=3, warmup_samples=0)
    assert metrics["n"] == 2 and metrics["compression_ratio"] == 1.0 and len(predictions) == 2
    assert metrics["n_passkey"] == 2 and 0 <= metrics["accuracy_passkey_ci_low"] <= metrics["accuracy_passkey_ci_high"] <= 1


def test_gist_from_stored_artifacts_needs_a_manifest(trained):
    builder, root = trained
    with pytest.raises(GistkvError, match="manifest.json"):
        builder.build("gist", rag_index_dir=root / "idx", collection="c", gist_kv_dir=root / "no-kv")
    (root / "kv").mkdir()
    (root / "kv/manifest.json").write_text("{}")
    assert isinstance(builder.build("gist", rag_index_dir=root / "idx", collection="c", gist_kv_dir=root / "kv"), Gist)
