"""bfloat16 context reads on a CPU that only emulates bfloat16: said by doctor, warned at training and loading."""

import logging

import pytest
import torch

from gistkv.core.compressor import load_compressor
from gistkv.hardware import CPU_BFLOAT16_PROBES, native_bfloat16, slow_autocast_warning
from gistkv.tools.doctor import report
from gistkv.training.train import train_compressor
from gistkv.training.train_config import GistParams
from test_train import documents, train_params


def cpu_probes(monkeypatch, *answers):
    for name, answer in zip(CPU_BFLOAT16_PROBES, answers):
        monkeypatch.setattr(torch.cpu, name, lambda answer=answer: answer, raising=False)


@pytest.mark.parametrize("avx512_bf16, amx, native", [(True, False, True), (False, True, True), (False, False, False)])
def test_either_cpu_probe_means_native_bfloat16(monkeypatch, avx512_bf16, amx, native):
    cpu_probes(monkeypatch, avx512_bf16, amx)
    assert native_bfloat16("cpu") is native
    assert (slow_autocast_warning("bfloat16", "cpu") is None) is native
    assert slow_autocast_warning("none", "cpu") is None


def test_a_gpu_that_only_emulates_bfloat16_is_not_native(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # torch's answer for a pre-Ampere GPU: supported only when emulation counts
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert native_bfloat16("cuda") is False
    assert "below compute capability 8.0" in slow_autocast_warning("bfloat16", "cuda")


def test_a_torch_without_the_probes_cannot_tell(monkeypatch):
    for name in CPU_BFLOAT16_PROBES:
        monkeypatch.delattr(torch.cpu, name, raising=False)
    assert native_bfloat16("cpu") is None and slow_autocast_warning("bfloat16", "cpu") is None


@pytest.mark.parametrize("native, said", [(False, "emulated on cpu"), (True, "native on cpu")])
def test_doctor_says_whether_bfloat16_is_native(monkeypatch, tmp_path, native, said):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu_probes(monkeypatch, native, False)
    assert dict(report(tmp_path))["bfloat16 matmuls"].startswith(said)


def test_emulated_bfloat16_reads_warn_when_training_and_loading(tiny_base, tmp_path, monkeypatch, caplog):
    cpu_probes(monkeypatch, False, False)
    params = train_params(context_encoder="base", context_autocast="bfloat16")
    with caplog.at_level(logging.WARNING):
        train_compressor(tiny_base, documents(12), documents(2, 100), GistParams(num_tokens=2), params, tmp_path / "gist",
                         tmp_path / "ckpt", tmp_path / "metrics")
        load_compressor(tmp_path / "gist", base_dir=str(tiny_base))
    warned = [record.getMessage() for record in caplog.records if "no native bfloat16" in record.getMessage()]
    assert len(warned) == 2 and warned[1].startswith(str(tmp_path / "gist" / "compressor.json"))

    cpu_probes(monkeypatch, True, False)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_compressor(tmp_path / "gist", base_dir=str(tiny_base))
    assert not [record for record in caplog.records if "no native bfloat16" in record.getMessage()]


def test_memory_plan_counts_what_4bit_and_longer_documents_change():
    from gistkv.tools.doctor import memory_plan

    config = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
              "intermediate_size": 14336, "vocab_size": 128256, "tie_word_embeddings": False}     # Llama-3-8B
    train = {"lora_r": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "batch_size": 1}
    full = dict(memory_plan(config, {"dtype": "bfloat16"}, train, 10, 2048))
    nf4 = dict(memory_plan(config, {"dtype": "bfloat16", "load_in_4bit": True}, train, 10, 2048))
    longer = dict(memory_plan(config, {"dtype": "bfloat16", "load_in_4bit": True}, train, 10, 8192))
    # ~8 B parameters: 2 bytes each vs ~0.5 for the 7 B quantized ones, with the 1 B of embeddings and head in float32
    assert 14 < full["weights"] < 16 and 6.5 < nf4["weights"] < 7.5
    assert nf4["KV cache of a 2,048-token document"] == 2 * full["KV cache of a 2,048-token document"]   # float32
    assert longer["KV cache of a 8,192-token document"] == 4 * nf4["KV cache of a 2,048-token document"]
    assert nf4["total (estimate)"] < full["total (estimate)"]
    head = "output layer: logits, log-softmax, head copies"      # + autocast's bfloat16 copy of the float32 head
    assert nf4[head] - full[head] == pytest.approx(128256 * 4096 * 2 / (1 << 30))
    adapted = dict(memory_plan(config, {"dtype": "bfloat16"}, {**train, "context_encoder": "adapted"}, 10, 2048))
    checkpointed = dict(memory_plan(config, {"dtype": "bfloat16"},
                                    {**train, "context_encoder": "adapted", "gradient_checkpointing": True}, 10, 2048))
    grads = "activations for backward"
    assert adapted[grads] > 8 * full[grads]             # the document runs with gradients too
    assert checkpointed[grads] < adapted[grads] / 10    # one hidden state per layer, one layer replayed at a time


def test_doctor_plan_prints_a_verdict(tiny_base):
    from typer.testing import CliRunner

    from gistkv.cli import app

    done = CliRunner().invoke(app, ["doctor", "--base", str(tiny_base), "--plan"])
    assert done.exit_code == 0, done.output
    assert "total (estimate)" in done.output and "fits in" in done.output
