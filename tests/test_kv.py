"""Gist KV artifacts: round trip, determinism, and every mismatch/corruption as a one-line error."""

import pytest
import torch

from gistkv.core.compressor import untrained_compressor
from gistkv.core.kv import GistKV, answer, answer_ids, compress
from gistkv.core.prompt import encode, query_text
from gistkv.errors import GistkvError

TEXT = "The grass is green. The sky is blue. The pass key is 12345. Remember it. The sun is yellow."


@pytest.fixture
def compressor(tiny_model, tokenizer):
    return untrained_compressor(tiny_model, tokenizer, num_gist_tokens=4)


def test_round_trip_answers_the_same_tokens(compressor, tmp_path):
    gist_kv = compress(compressor, TEXT)
    prompt = encode(compressor.tokenizer, query_text("What is the pass key?"))
    in_memory = answer_ids(compressor, gist_kv, prompt, max_new_tokens=6).token_ids
    gist_kv.save(tmp_path / "doc.gist.safetensors")
    loaded = GistKV.load(tmp_path / "doc.gist.safetensors", compressor)
    assert answer_ids(compressor, loaded, prompt, max_new_tokens=6).token_ids == in_memory
    # several questions against one loaded artifact, no recompression
    assert isinstance(answer(compressor, loaded, "What colour is the sky?", max_new_tokens=3), str)
    assert loaded.position_offset == len(encode(compressor.tokenizer, TEXT)) + 4
    assert loaded.metadata["num_gist_tokens"] == "4" and loaded.metadata["source_sha256"]


def test_same_input_same_bytes(compressor, tmp_path):
    compress(compressor, TEXT).save(tmp_path / "a.safetensors")
    compress(compressor, TEXT).save(tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_mismatches_are_one_line_errors(compressor, tokenizer, tmp_path):
    path = tmp_path / "doc.safetensors"
    compress(compressor, TEXT).save(path)
    from tiny import tiny_llama, tiny_tokenizer

    other_tokens = untrained_compressor(tiny_llama(len(tokenizer)), tiny_tokenizer(), num_gist_tokens=5)
    with pytest.raises(GistkvError, match="made with num_gist_tokens='4'"):
        GistKV.load(path, other_tokens)
    other_model = untrained_compressor(tiny_llama(len(tokenizer)), tiny_tokenizer(), num_gist_tokens=4)
    other_model.meta["base_weights_sha256"] = "another-model"
    with pytest.raises(GistkvError, match="made with base_weights_sha256="):
        GistKV.load(path, other_model)
    other_tokenizer = untrained_compressor(tiny_llama(len(tokenizer)), tiny_tokenizer(), num_gist_tokens=4)
    other_tokenizer.meta["tokenizer_sha256"] = "another-tokenizer"
    with pytest.raises(GistkvError, match="made with tokenizer_sha256="):
        GistKV.load(path, other_tokenizer)


def test_truncated_and_foreign_files(compressor, tmp_path):
    path = tmp_path / "doc.safetensors"
    compress(compressor, TEXT).save(path)
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(GistkvError, match="truncated or corrupt"):
        GistKV.load(tmp_path / "cut.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(GistkvError, match="not a gistkv v1 artifact"):
        GistKV.load(tmp_path / "foreign.safetensors")
    with pytest.raises(GistkvError, match="file not found"):
        GistKV.load(tmp_path / "missing.safetensors")


def test_context_longer_than_the_model_is_a_clear_error(compressor):
    with pytest.raises(GistkvError, match="split the document"):
        compress(compressor, "word " * 5000)


@pytest.mark.slow
def test_round_trip_on_real_smollm2(smollm2_base, tmp_path):
    from gistkv.core.model import load_base

    base = load_base(smollm2_base)
    real = untrained_compressor(base.model, base.tokenizer, num_gist_tokens=4)
    gist_kv = compress(real, TEXT * 3)
    prompt = encode(real.tokenizer, query_text("What is the pass key?"))
    expected = answer_ids(real, gist_kv, prompt, max_new_tokens=5).token_ids
    gist_kv.save(tmp_path / "real.safetensors")
    assert answer_ids(real, GistKV.load(tmp_path / "real.safetensors", real), prompt, max_new_tokens=5).token_ids == expected
    assert (tmp_path / "real.safetensors").stat().st_size < 200_000   # 4 tokens x 30 layers x 3 heads x 64 x 2 x fp32


def test_a_file_with_damaged_metadata_is_a_one_line_error(compressor, tmp_path):
    """A gist file whose metadata lost position_offset must not end in a KeyError traceback."""
    from safetensors.torch import load_file

    from gistkv.core.kv import deterministic_safetensors

    path = tmp_path / "doc.safetensors"
    gist_kv = compress(compressor, TEXT)
    gist_kv.save(path)
    metadata = {key: value for key, value in gist_kv.metadata.items() if key != "position_offset"}
    (tmp_path / "damaged.safetensors").write_bytes(deterministic_safetensors(load_file(str(path)), metadata))
    with pytest.raises(GistkvError, match="metadata position_offset missing or not a number"):
        GistKV.load(tmp_path / "damaged.safetensors")


def test_empty_documents_are_refused_and_long_ones_warned(compressor):
    with pytest.raises(GistkvError, match="the document is empty"):
        compress(compressor, "")
    heard = []
    compressor.meta["trained_context_tokens"] = 8
    compress(compressor, TEXT, warn=heard.append)
    assert len(heard) == 1 and "training never read more than 8" in heard[0]
    compressor.meta["trained_context_tokens"] = 10_000
    compress(compressor, TEXT, warn=heard.append)
    assert len(heard) == 1
