"""`gistkv compress` / `ask` / `inspect` end to end on a tiny trained compressor: a document with a needle family
training never saw, a free-form question, the answer path and how sure the model was; bad input as one line."""

import json

import pytest
from test_train import documents, train_params
from typer.testing import CliRunner

from gistkv.cli import app
from gistkv.training.train import train_compressor
from gistkv.training.train_config import GistParams

# A needle family of the test split (never in training) in a short English document.
UNSEEN = ("The committee met on a Tuesday and discussed the budget. The combination of the secret vault is 58302. "
          "Several members asked for more time to read the report.")


@pytest.fixture(scope="module")
def compressor_dir(tiny_base, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    train_compressor(tiny_base, documents(4), documents(2, 100), GistParams(num_tokens=2),
                     train_params(max_steps=2, save_steps=2, eval_steps=2), root / "gist", root / "ckpt", root / "m")
    return root / "gist"


def test_compress_then_ask_free_form_with_its_confidence(compressor_dir, tmp_path):
    document, artifact = tmp_path / "doc.txt", tmp_path / "doc.gist.safetensors"
    document.write_text(UNSEEN, encoding="utf-8")
    runner = CliRunner()
    done = runner.invoke(app, ["compress", str(document), "-o", str(artifact), "--model", str(compressor_dir)])
    assert done.exit_code == 0, done.output
    assert "-> 2 gist tokens + 3 passages indexed" in done.output and artifact.exists()
    asked = runner.invoke(app, ["ask", str(artifact), "What is the combination of the secret vault?",
                                "--model", str(compressor_dir), "--max-new-tokens", "4"])
    assert asked.exit_code == 0, asked.output
    confidence = [line for line in asked.output.splitlines() if line.startswith("[confidence ")]
    assert len(confidence) == 1 and "answered from 2 gist tokens" in confidence[0] and "closest passage" in confidence[0]
    value = float(confidence[0].split()[1])
    assert 0 <= value <= 1 and ("treat it as a guess" in confidence[0]) == (value < 0.5)
    inspected = runner.invoke(app, ["inspect", str(artifact)])
    assert inspected.exit_code == 0 and "full KV it replaces" in inspected.output
    assert "passage index: 3 passages" in inspected.output
    empty = runner.invoke(app, ["ask", str(artifact), " ? ", "--model", str(compressor_dir)])
    assert empty.exit_code == 1 and "the question has no words" in empty.output and "Traceback" not in empty.output
    out_of_range = runner.invoke(app, ["ask", str(artifact), "What?", "--model", str(compressor_dir), "--min-presence", "36"])
    assert out_of_range.exit_code == 2 and "--min-presence" in out_of_range.output


@pytest.mark.parametrize("question, decline", [("What is the phone number of the harbour master?",
                                                 "The document does not say."),
                                                ("항구 관리인의 전화번호는 무엇입니까?", "문서에 나와 있지 않습니다.")])
def test_a_question_no_passage_is_about_is_declined_without_asking_the_gist(compressor_dir, tmp_path, question,
                                                                            decline, monkeypatch):
    import gistkv.core.kv

    document, artifact = tmp_path / "doc.txt", tmp_path / "doc.gist.safetensors"
    document.write_text(UNSEEN, encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["compress", str(document), "-o", str(artifact), "--model", str(compressor_dir)]).exit_code == 0
    real_answer_ids = gistkv.core.kv.answer_ids

    def gist_must_not_be_asked(*args, **kwargs):
        raise AssertionError("the gist was asked")

    monkeypatch.setattr(gistkv.core.kv, "answer_ids", gist_must_not_be_asked)
    asked = runner.invoke(app, ["ask", str(artifact), question, "--model", str(compressor_dir)])
    monkeypatch.setattr(gistkv.core.kv, "answer_ids", real_answer_ids)
    assert asked.exit_code == 0, asked.output
    lines = [line.split("\r")[-1].split("it/s]")[-1] for line in asked.output.splitlines()]   # after load's progress bar
    assert decline in lines and any(line.startswith("[declined: the closest passage of the document has similarity")
                                    for line in lines)
    assert not any(line.startswith("[confidence") for line in lines)          # the gist was not asked
    forced = runner.invoke(app, ["ask", str(artifact), question, "--model", str(compressor_dir), "--min-presence", "-1",
                                 "--max-new-tokens", "2"])
    assert forced.exit_code == 0 and any(line.startswith("[confidence") for line in forced.output.splitlines())


def test_a_gist_compressed_without_the_index_answers_everything_and_says_so(compressor_dir, tmp_path):
    document, artifact = tmp_path / "doc.txt", tmp_path / "doc.gist.safetensors"
    document.write_text(UNSEEN, encoding="utf-8")
    runner = CliRunner()
    done = runner.invoke(app, ["compress", str(document), "-o", str(artifact), "--model", str(compressor_dir), "--no-index"])
    assert done.exit_code == 0 and "passages indexed" not in done.output
    asked = runner.invoke(app, ["ask", str(artifact), "What is the phone number of the harbour master?",
                                "--model", str(compressor_dir), "--max-new-tokens", "2"])
    assert asked.exit_code == 0 and "has no passage index (compressed with --no-index" in asked.output
    assert any(line.startswith("[confidence") for line in asked.output.splitlines())


def test_bad_input_is_one_line_without_a_traceback(compressor_dir, tmp_path):
    runner = CliRunner()
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    empty = runner.invoke(app, ["compress", str(tmp_path / "empty.txt"), "-o", str(tmp_path / "e.safetensors"),
                                "--model", str(compressor_dir)])
    assert empty.exit_code == 1 and "the document is empty" in empty.output and "Traceback" not in empty.output
    assert not (tmp_path / "e.safetensors").exists()
    missing = runner.invoke(app, ["ask", str(tmp_path / "nope.safetensors"), "Q?", "--model", str(compressor_dir)])
    assert missing.exit_code == 1 and "nope.safetensors: file not found" in missing.output
    (tmp_path / "bad-model").mkdir()
    (tmp_path / "bad-model/compressor.json").write_text(json.dumps({"num_gist_tokens": 2}))
    broken = runner.invoke(app, ["ask", str(tmp_path / "nope.safetensors"), "Q?", "--model", str(tmp_path / "bad-model")])
    assert broken.exit_code == 1 and "compressor.json: lacks" in broken.output and "Traceback" not in broken.output


def test_a_document_longer_than_training_read_is_warned(compressor_dir, tmp_path):
    document = tmp_path / "long.txt"
    document.write_text(UNSEEN * 4, encoding="utf-8")
    done = CliRunner().invoke(app, ["compress", str(document), "-o", str(tmp_path / "l.safetensors"),
                                    "--model", str(compressor_dir)])
    assert done.exit_code == 0 and "warning:" in done.output and "training never read more than 16" in done.output
