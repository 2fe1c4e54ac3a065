"""The paper-scale path on CPU stand-ins: QLoRA (bitsandbytes NF4 on the CPU), a Llama-3-shaped model in
bfloat16, and the training settings that must be refused before a model loads."""

from pathlib import Path

import pytest
import torch
from test_train import documents, train_params

from gistkv.core.compressor import load_compressor
from gistkv.core.kv import GistKV, answer, compress
from gistkv.core.model import ModelParams, load_base, prepare_base
from gistkv.core.prompt import adds_bos, encode, prompt_layout, query_text
from gistkv.errors import GistkvError
from gistkv.params import from_mapping
from gistkv.training.train import train_compressor
from gistkv.training.train_config import GistParams, TrainParams


def prepared(source: Path, root: Path, **load) -> Path:
    params = ModelParams(source=str(source), embedded_package="unused", embedded_gguf="unused", embedded_sha256="0",
                         device="cpu", **{"dtype": "float32", "load_in_4bit": False, **load})
    prepare_base(params, root / "base", root / "downloads")
    return root / "base"


def train_compress_answer(base: Path, root: Path) -> tuple[dict, str]:
    train_compressor(base, documents(4), documents(2, 100), GistParams(num_tokens=2),
                     train_params(max_steps=2, save_steps=2, eval_steps=2, lora_r=4, lora_alpha=8),
                     root / "gist", root / "ckpt", root / "metrics")
    compressor = load_compressor(root / "gist")
    compress(compressor, "The grass is green. The pass key is 12345.").save(root / "doc.safetensors")
    reply = answer(compressor, GistKV.load(root / "doc.safetensors", compressor), "What is the pass key?", 3)
    return compressor.meta, reply


def test_qlora_trains_compresses_and_answers_on_the_cpu(tmp_path):
    from tiny import save_tiny_model

    base = prepared(save_tiny_model(tmp_path / "tiny"), tmp_path, load_in_4bit=True)
    loaded = load_base(base)
    assert loaded.info["quantization"] == "nf4"
    q_proj = loaded.model.model.layers[0].self_attn.q_proj
    assert type(q_proj).__name__ == "Linear4bit" and q_proj.compute_dtype == torch.float32     # model.dtype, not bf16
    meta, reply = train_compress_answer(base, tmp_path)
    assert meta["quantization"] == "nf4" and isinstance(reply, str) and meta["adds_bos"] is False


def test_a_llama3_shaped_model_in_bfloat16_goes_through_train_compress_answer(tmp_path):
    from tiny import save_llama3_shaped_model

    base = prepared(save_llama3_shaped_model(tmp_path / "llama3"), tmp_path, dtype="bfloat16")
    loaded = load_base(base)
    config = loaded.model.config
    assert not config.tie_word_embeddings and config.num_key_value_heads == 1 and config.num_attention_heads == 4
    meta, reply = train_compress_answer(base, tmp_path)
    assert meta["dtype"] == "bfloat16" and meta["num_kv_heads"] == 1 and isinstance(reply, str)
    stored = GistKV.load(tmp_path / "doc.safetensors")
    assert stored.keys[0].dtype.is_floating_point and stored.keys[0].shape[0] == 1      # one KV head kept
    # BOS, as the model card's tokenizer does it: recorded by training, and the read behind the file began with it
    compressor = load_compressor(tmp_path / "gist")
    text = "The grass is green. The pass key is 12345."
    assert meta["adds_bos"] is True
    assert int(stored.metadata["context_tokens"]) == len(encode(compressor.tokenizer, text)) + 1


def test_bos_follows_the_tokenizer_and_a_mismatch_is_refused(tmp_path):
    import json

    from tiny import save_llama3_shaped_model, tiny_tokenizer

    plain = tiny_tokenizer()
    assert not adds_bos(plain) and prompt_layout(plain).document_ids("The sky") == encode(plain, "The sky")
    base = prepared(save_llama3_shaped_model(tmp_path / "llama3"), tmp_path)
    train_compress_answer(base, tmp_path)
    compressor = load_compressor(tmp_path / "gist")
    tokenizer = compressor.tokenizer
    assert compressor.layout.document_ids("The sky") == [tokenizer.bos_token_id] + encode(tokenizer, "The sky")
    meta_path = tmp_path / "gist" / "compressor.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "adds_bos": False}))
    with pytest.raises(GistkvError, match="compressor.json: adds_bos is False but the tokenizer .* says True"):
        load_compressor(tmp_path / "gist")
    del meta["adds_bos"]                # written before BOS was handled: its reads never began with BOS
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(GistkvError, match="compressor.json: adds_bos is missing \\(a compressor from before BOS was handled\\) but the tokenizer"):
        load_compressor(tmp_path / "gist")


def test_chat_template_reads_are_one_user_turn_in_training_compression_and_answering(tmp_path):
    """model.chat_template: true lays every read out as the template's user turn (BOS once), the answer after the
    assistant's header; compressor.json records it and a base prepared the other way is refused."""
    import json

    from tiny import save_llama3_shaped_model

    base = prepared(save_llama3_shaped_model(tmp_path / "llama3"), tmp_path, chat_template=True)
    loaded = load_base(base)
    tokenizer, layout = loaded.tokenizer, loaded.layout
    turn = tokenizer.apply_chat_template([{"role": "user", "content": "The sky" + query_text("Why?")}],
                                         add_generation_prompt=True, tokenize=False)
    assert layout.document_ids("The sky") + layout.query_ids(query_text("Why?")) == encode(tokenizer, turn)
    assert layout.head_ids.count(tokenizer.bos_token_id) == 1 and layout.head_ids[0] == tokenizer.bos_token_id
    meta, reply = train_compress_answer(base, tmp_path)
    assert meta["chat_template"] is True and isinstance(reply, str) and meta["prompt_layout"] == layout.record()
    stored = GistKV.load(tmp_path / "doc.safetensors")
    text = "The grass is green. The pass key is 12345."
    assert int(stored.metadata["context_tokens"]) == len(layout.head_ids) + len(encode(tokenizer, text))
    meta_path = tmp_path / "gist" / "compressor.json"
    saved = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**saved, "prompt_layout": {**saved["prompt_layout"], "head_ids": [1]}}))
    with pytest.raises(GistkvError, match="compressor.json: prompt_layout .* differs from what the tokenizer in"):
        load_compressor(tmp_path / "gist")          # e.g. a template edited since training
    (tmp_path / "plain").mkdir()
    plain = prepared(save_llama3_shaped_model(tmp_path / "llama3"), tmp_path / "plain")
    meta_path.write_text(json.dumps({**saved, "base_dir": str(plain)}))
    with pytest.raises(GistkvError, match="compressor.json: chat_template is True but its base model .* was prepared "
                                          "with model.chat_template: False"):
        load_compressor(tmp_path / "gist")


def test_a_chat_turn_ends_as_the_template_ends_it_on_any_day():
    """A template whose assistant turn ends in its own marker (Gemma's <end_of_turn>, Llama-3's <|eot_id|>): training
    answers end with it and decoding stops at it; a dated system prompt (Llama-3.1's) reads one fixed date."""
    from tiny import tiny_llama, tiny_tokenizer

    from gistkv.core.compressor import untrained_compressor
    from gistkv.training.train_records import tokenize_documents

    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = (
        "{% if not date_string is defined %}{% set date_string = strftime_now('%d %b %Y %H:%M:%S') %}{% endif %}"
        "Today: {{ date_string }}\n{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{{ message['content'] }}[end]\n{% endfor %}{% if add_generation_prompt %}<|im_start|>model\n{% endif %}")
    layout = prompt_layout(tokenizer, chat_template=True)
    assert tokenizer.decode(layout.head_ids).startswith("Today: 26 Jul 2024\n")
    assert layout.end_ids == tuple(encode(tokenizer, "[end]")) and layout.end_ids != (tokenizer.eos_token_id,)
    document = {"context": "The sky is blue.", "questions": [{"question": "What colour?", "answer": "blue"}]}
    (query, answer_ids), = tokenize_documents([document], layout)[0]["questions"]
    assert answer_ids[-len(layout.end_ids):] == list(layout.end_ids) and query[-len(layout.tail_ids):] == list(layout.tail_ids)
    reader = untrained_compressor(tiny_llama(len(tokenizer)), tokenizer, 0, chat_template=True)
    assert layout.end_ids[0] in reader.stop_ids
    tokenizer.chat_template = "{{ raise_exception('system messages only') }}"
    with pytest.raises(GistkvError, match="^model.chat_template: true, but the tokenizer of .* fails to render one user "
                                          "turn \\(TemplateError: system messages only\\); set model.chat_template: false"):
        prompt_layout(tokenizer, chat_template=True)


def test_chat_template_without_one_in_the_tokenizer_is_refused_when_the_base_is_prepared(tmp_path):
    from tiny import save_tiny_model

    with pytest.raises(GistkvError, match="model.chat_template: true, but the tokenizer .* has no chat template"):
        prepared(save_tiny_model(tmp_path / "tiny"), tmp_path, chat_template=True)
    assert not (tmp_path / "base").exists()


@pytest.mark.parametrize("change, message", [
    ({"lr_scheduler": "cosine_warm"}, "train.lr_scheduler: must be one of"),
    ({"lora_r": 0}, "train.lora_r: must be >= 1"),
    ({"logging_steps": 0}, "train.logging_steps: must be >= 1"),
    ({"validation_samples": 0}, "train.validation_samples: must be >= 1"),
    ({"warmup_steps": -5}, "train.warmup_steps: warmup_steps and weight_decay must be >= 0"),
])
def test_bad_training_settings_are_refused_before_a_model_loads(change, message):
    values = vars(train_params())
    values.update(change)
    with pytest.raises(GistkvError, match=message):
        from_mapping(TrainParams, values, "train")


@pytest.mark.parametrize("context_encoder, load_in_4bit", [("adapted", False), ("base", False), ("base", True)])
def test_gradient_checkpointing_trains_with_either_context_encoder(tiny_base, tmp_path, context_encoder, load_in_4bit):
    """(Same gradients as without checkpointing: ``test_trainer.py``.)"""
    from tiny import save_tiny_model

    base = prepared(save_tiny_model(tmp_path / "tiny"), tmp_path, load_in_4bit=True) if load_in_4bit else tiny_base
    result = train_compressor(base, documents(4), documents(2, 100), GistParams(num_tokens=2),
                              train_params(max_steps=2, save_steps=2, eval_steps=2, gradient_checkpointing=True,
                                           context_encoder=context_encoder),
                              tmp_path / "gist", tmp_path / "ckpt", tmp_path / "metrics")
    assert result["steps"] == 2 and result["train_loss"] == result["train_loss"]      # not NaN


def test_the_gpu_smoke_test_runs_its_path_on_the_cpu(tiny_base, tmp_path):
    """`gistkv smoke-gpu --device cpu`: the same variants the GPU run measures, on the tiny model."""
    import json

    from typer.testing import CliRunner

    from gistkv.cli import app
    from test_train import stage_inputs

    params = stage_inputs(tmp_path)
    done = CliRunner().invoke(app, ["smoke-gpu", "--base", str(tiny_base), "--niah", str(tmp_path / "niah"),
                                    "--params", str(params), "--steps", "2", "--device", "cpu",
                                    "--variants", "float32,nf4"])
    assert done.exit_code == 0, done.output
    rows = [line[line.index("variant="):] for line in done.output.splitlines() if "variant=" in line]   # (stderr mixed in)
    assert len(rows) == 2 and all("error=" not in row and "s_per_step=" in row for row in rows), rows
    assert "quantization=nf4" in rows[1]
    refused = CliRunner().invoke(app, ["smoke-gpu", "--base", str(tiny_base)])
    assert refused.exit_code == 1 and "no CUDA device" in refused.output
    unknown = CliRunner().invoke(app, ["smoke-gpu", "--device", "cpu", "--variants", "float32,fp16"])
    assert unknown.exit_code == 1 and "unknown fp16; choose from float32, bfloat16, nf4" in unknown.output


def test_the_smoke_test_draws_a_model_of_a_named_shape_and_sets_its_peak_beside_the_plan(tiny_base, tmp_path):
    """`gistkv smoke-gpu --shape llama3-8b` on a GPU; here the same path with a tiny Llama-3-like shape on the CPU."""
    from test_train import stage_inputs

    from gistkv.tools.doctor import memory_plan
    from gistkv.tools.smoke import SHAPES, smoke

    shape = dict(SHAPES["llama3-8b"], hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=1, vocab_size=512)
    params = stage_inputs(tmp_path)
    rows = smoke(tiny_base, tmp_path / "niah", params, 2, "cpu", ["float32"], shape,
                 {"batch_size": 2, "gradient_checkpointing": True})
    assert rows[0]["variant"] == "random weights drawn and saved"
    row = rows[1]
    assert "error" not in row, row
    assert row["steps"] == 2 and row["batch_size"] == 2 and row["gradient_checkpointing"] is True
    assert isinstance(row["s_per_step_after_first"], float)
    assert row["peak_train_cuda_gib"] is None                                   # no CUDA here: no peak to read
    train = dict(train_params().__dict__, batch_size=2, gradient_checkpointing=True)
    planned = memory_plan(shape, {"dtype": "float32"}, train, 2, row["longest_context_tokens"])[-1][1]
    assert row["plan_gib"] == float(f"{planned:.3g}")                           # the drawn shape's plan, not the base's


def test_steady_step_time_leaves_the_first_step_out():
    from gistkv.tools.smoke import steady_step_s

    history = [{"step": 0, "eval_loss": 5.0}, {"loss": 4.0, "train_runtime": 7.0}, {"loss": 3.0, "train_runtime": 8.5},
               {"eval_loss": 3.5, "train_runtime": 9.9}, {"loss": 2.0, "train_runtime": 10.0}]
    assert steady_step_s(history) == 1.5            # (10.0 - 7.0) / 2: the held-out check's entry is not a step
    assert steady_step_s(history[:2]) is None
