"""gistkv.core.routing: a ``gist_read: routed`` compressor answers from the one gist group whose chunk holds the
passage closest to the question; the passage index stores where each passage ends, in context tokens."""

import pytest
import torch
from test_presence import bag_of_words
from test_train import documents, train_params
from typer.testing import CliRunner

from gistkv.cli import app
from gistkv.core.compressor import untrained_compressor
from gistkv.core.kv import GistKV, compress
from gistkv.core.presence import PLACES, PresenceIndex, passage_spans
from gistkv.core.prompt import prompt_layout
from gistkv.core.routing import routed_gist, token_of_chars
from gistkv.errors import GistkvError
from gistkv.training.train import train_compressor
from gistkv.training.train_config import GistParams

FILLER = "The grass is green and the river runs slowly past the old mill. " * 6
TEXT = "The pass key is 48213. " + FILLER + "The lighthouse keeper painted the door blue."


def test_a_passage_ends_where_its_span_says():
    text = "한국어 문장입니다. " + TEXT
    for passage, end in passage_spans(text):
        assert text[:end].endswith(passage.split()[-1])


def test_token_of_chars_names_the_token_that_holds_the_character(tokenizer):
    layout = prompt_layout(tokenizer)
    text = "비밀번호는 48213입니다. " + TEXT
    ids = layout.document_ids(text)
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True).offset_mapping
    chars = [index for index, character in enumerate(text) if not character.isspace()]
    for char, token in zip(chars, token_of_chars(layout, text, chars)):
        start, end = offsets[token - len(layout.head_ids)]
        assert start <= char < end and 0 <= token < len(ids)


def routed(tiny_model, tokenizer):
    compressor = untrained_compressor(tiny_model, tokenizer, 4, gist_view="groups:2")
    compressor.meta["gist_read"] = "routed"
    gist_kv = compress(compressor, TEXT)
    PresenceIndex.build(TEXT, bag_of_words, lambda chars: token_of_chars(compressor.layout, TEXT, chars)).attach(gist_kv)
    return compressor, gist_kv


def test_the_question_reads_the_group_of_its_closest_passage(tiny_model, tokenizer, tmp_path):
    compressor, gist_kv = routed(tiny_model, tokenizer)
    gist_kv.save(tmp_path / "doc.safetensors")
    loaded = GistKV.load(tmp_path / "doc.safetensors", compressor)
    assert PresenceIndex.of(loaded).token_ends.dtype == torch.int32
    first, group = routed_gist(compressor, loaded, "What is the pass key?", bag_of_words)
    assert group == 0 and first.num_gist == 2 and torch.equal(first.keys[-1], loaded.keys[-1][:, :2])
    last, group = routed_gist(compressor, loaded, "Which colour did the lighthouse keeper paint the door?", bag_of_words)
    assert group == 1 and torch.equal(last.values[0], loaded.values[0][:, 2:])
    assert last.position_offset == loaded.position_offset       # answering continues after the whole gist
    compressor.meta["gist_read"] = "all"
    assert routed_gist(compressor, loaded, "What is the pass key?", bag_of_words) == (loaded, None)


def test_a_routed_read_without_passage_places_is_one_line(tiny_model, tokenizer, tmp_path):
    compressor, gist_kv = routed(tiny_model, tokenizer)
    del gist_kv.extra[PLACES]
    with pytest.raises(GistkvError, match="doc.safetensors: this compressor reads one gist group per question"):
        routed_gist(compressor, gist_kv, "What is the pass key?", bag_of_words, path="doc.safetensors")
    gist_kv.extra[PLACES] = torch.zeros(1, dtype=torch.int32)
    with pytest.raises(GistkvError, match="passage index is damaged"):
        PresenceIndex.of(gist_kv)
    gist_kv.extra[PLACES] = -torch.ones(gist_kv.extra["presence.scales"].shape[0], dtype=torch.int32)
    with pytest.raises(GistkvError, match="passage index is damaged"):
        PresenceIndex.of(gist_kv)


def test_ask_routes_a_routed_compressor_end_to_end(tiny_base, tmp_path):
    """Trained with gist_read: routed (two groups of one token), compressed with the index, asked through the CLI."""
    train_compressor(tiny_base, documents(4), documents(2, 100), GistParams(num_tokens=2),
                     train_params(max_steps=2, save_steps=2, eval_steps=2, gist_view="groups:2", gist_read="routed"),
                     tmp_path / "gist", tmp_path / "ckpt", tmp_path / "m")
    document, artifact = tmp_path / "doc.txt", tmp_path / "doc.gist.safetensors"
    document.write_text(TEXT, encoding="utf-8")
    runner = CliRunner()
    done = runner.invoke(app, ["compress", str(document), "-o", str(artifact), "--model", str(tmp_path / "gist")])
    assert done.exit_code == 0, done.output
    for check in ("0.36", "-1"):        # the gate on, or off: the route needs the index either way
        asked = runner.invoke(app, ["ask", str(artifact), "What is the pass key?", "--model", str(tmp_path / "gist"),
                                    "--max-new-tokens", "3", "--min-presence", check])
        assert asked.exit_code == 0, asked.output
        assert "answered from 1 of 2 gist tokens (group 0, by the closest passage)" in asked.output
    plain = tmp_path / "plain.gist.safetensors"
    assert runner.invoke(app, ["compress", str(document), "-o", str(plain), "--model", str(tmp_path / "gist"),
                               "--no-index"]).exit_code == 0
    refused = runner.invoke(app, ["ask", str(plain), "What is the pass key?", "--model", str(tmp_path / "gist")])
    assert refused.exit_code == 1 and "reads one gist group per question" in refused.output
    assert "Traceback" not in refused.output


def test_the_held_out_checks_of_a_routed_run_read_the_group_of_each_key(tiny_model, tokenizer, monkeypatch):
    from gistkv.evaluation.evaluate import evaluate_documents, score_niah
    from gistkv.evaluation.methods import Gist
    from gistkv.training.routes import KeyRoutedGist

    compressor = untrained_compressor(tiny_model, tokenizer, 4, gist_view="groups:2")
    document = documents(1)[0]
    document = dict(document, context=FILLER + document["context"])      # the key in the second half
    read = []
    original = Gist.answer
    monkeypatch.setattr(Gist, "answer", lambda self, prepared, question, max_new_tokens: read.append(
        (question["kind"], prepared.state.num_gist, prepared.state.values[0][:, 0].clone()))
        or original(self, prepared, question, max_new_tokens))
    rows = evaluate_documents([KeyRoutedGist(compressor)], compressor, [document], 3, score_niah, warm_up_first=False)
    assert len(rows) == 2 and [(kind, tokens) for kind, tokens, _ in read] == [("present", 2), ("absent", 2)]
    whole = compress(compressor, document["context"])
    assert torch.allclose(read[0][2], whole.values[0][:, 2], atol=1e-5)      # group 1: gist tokens 2 and 3
