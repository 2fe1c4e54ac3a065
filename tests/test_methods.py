"""Methods by name, the readers they use, one shared read per document, and the cost accounting, on a tiny
trained gist compressor and its control."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml
from test_train import documents, train_params
from typer.testing import CliRunner

from gistkv.core.compressor import ContextRead, load_compressor
from gistkv.core.prompt import encode
from gistkv.errors import GistkvError
from gistkv.evaluation.evaluate import evaluate_documents, score_niah
from gistkv.evaluation.methods import question_query
from gistkv.evaluation.registry import build_methods, method_names
from gistkv.evaluation.readers import load_readers
from gistkv.evaluation.summaries import niah_metrics
from gistkv.training.train import train_compressor
from gistkv.training.train_config import GistParams
from gistkv.training.trainer import tail_logits

REPO = Path(__file__).parent.parent
BUDGETS = [{"chunk_tokens": 8, "top_k": 1}, {"chunk_tokens": 8, "top_k": 2}]


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    """A gist compressor and its control, trained on the same tiny documents (2 steps each)."""
    root = tmp_path_factory.mktemp("trained")
    for name, masked, tokens in (("gist", True, 2), ("lora", False, 0)):
        train_compressor(tiny_base, documents(6), documents(2, 100), GistParams(num_tokens=tokens),
                         train_params(max_steps=2, save_steps=2, eval_steps=2, use_gist_mask=masked),
                         root / name, root / f"{name}_ckpt", root / f"{name}_metrics")
    return tiny_base, root


@pytest.fixture(scope="module")
def readers(trained):
    base, root = trained
    return load_readers(base, root / "gist", root / "lora", {"base", "tuned", "gist"})


class Retrieverless:
    """Stands in for the retriever where a test needs none (retrieval is tested in test_retrieval.py)."""


def load_stage(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_methods_are_named_by_what_they_read_and_who_reads_it(readers):
    names = method_names(["base", "tuned"], BUDGETS, gist=True)
    assert names == ["full/base", "full/tuned", "rag8/base", "rag8/tuned", "rag16/base", "rag16/tuned", "gist",
                     "gist/gated", "gist/empty"]
    with pytest.raises(GistkvError, match="method gist/gated needs the gate"):
        build_methods(names, readers, Retrieverless(), BUDGETS)
    built = build_methods(names, readers, Retrieverless(), BUDGETS, gate=(None, 0.36))
    assert [method.name for method in built] == names
    assert {method.name: method.reader_name for method in built}["rag16/tuned"] == "tuned"
    with pytest.raises(GistkvError, match="method 'bm25': unknown"):
        build_methods(["bm25"], readers, Retrieverless(), BUDGETS)


def test_control_and_compressor_are_not_interchangeable(trained):
    base, root = trained
    with pytest.raises(GistkvError, match="use_gist_mask is False; expected a gist compressor"):
        load_readers(base, root / "lora", root / "gist", {"gist"})
    with pytest.raises(GistkvError, match="use_gist_mask is True; expected the plain-LoRA control"):
        load_readers(base, root / "lora", root / "gist", {"tuned"})


def test_readers_that_would_read_differently_are_refused(trained, tmp_path):
    import shutil

    base, root = trained
    shutil.copytree(root / "lora", tmp_path / "lora")
    meta = json.loads((tmp_path / "lora/compressor.json").read_text())
    (tmp_path / "lora/compressor.json").write_text(json.dumps(dict(meta, context_autocast="bfloat16")))
    with pytest.raises(GistkvError, match="read contexts in different precisions"):
        load_readers(base, root / "gist", tmp_path / "lora", {"gist", "tuned"})


def test_readers_trained_on_plain_prompts_are_refused_beside_a_chat_base(trained, tmp_path):
    """One read of a document serves every reader: a base laid out as chat turns cannot serve a plain-prompt gist."""
    import shutil

    from transformers import AutoTokenizer

    from gistkv.core.model import ModelParams, prepare_base, read_base_meta

    base, root = trained
    source = shutil.copytree(read_base_meta(base)["path"], tmp_path / "source")
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    tokenizer.chat_template = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
                               "<|endoftext|>{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    tokenizer.save_pretrained(str(source))
    prepare_base(ModelParams(source=str(source), embedded_package="unused", embedded_gguf="unused", embedded_sha256="0",
                             dtype="float32", load_in_4bit=False, device="cpu", chat_template=True),
                 tmp_path / "chat_base", tmp_path / "downloads")
    with pytest.raises(GistkvError, match="gist: trained with chat_template False, but .*chat_base lays reads out with True"):
        load_readers(tmp_path / "chat_base", root / "gist", root / "lora", {"gist"})


@pytest.mark.parametrize("meta, message", [
    ({"context_encoder": "frozen"}, "compressor.json: context_encoder 'frozen' is not one of adapted, base"),
    ({"context_encoder": "base", "context_autocast": "float8"},
     "compressor.json: context_autocast 'float8' is not one of none, bfloat16"),
])
def test_a_compressor_json_with_an_unknown_context_read_is_refused(meta, message):
    with pytest.raises(GistkvError, match=message):
        ContextRead.from_meta(meta, Path("models/gist/compressor.json"))


def test_a_damaged_compressor_json_is_a_one_line_error(trained, tmp_path):
    import shutil

    _, root = trained
    shutil.copytree(root / "gist", tmp_path / "gist")
    meta = json.loads((tmp_path / "gist/compressor.json").read_text())
    del meta["gist_token_ids"]
    (tmp_path / "gist/compressor.json").write_text(json.dumps(meta))
    with pytest.raises(GistkvError, match="compressor.json: lacks gist_token_ids"):
        load_compressor(tmp_path / "gist")


def test_a_routed_read_of_an_undivided_gist_is_refused(trained, tmp_path):
    import shutil

    _, root = trained
    shutil.copytree(root / "gist", tmp_path / "gist")
    meta = json.loads((tmp_path / "gist/compressor.json").read_text())
    (tmp_path / "gist/compressor.json").write_text(json.dumps(dict(meta, gist_view="all", gist_read="routed")))
    with pytest.raises(GistkvError, match="compressor.json: gist_read 'routed' needs a gist_view with groups \\(groups:G or chunks\\), not 'all'"):
        load_compressor(tmp_path / "gist")


@pytest.mark.parametrize("name", ["gist", "full/tuned"])
def test_methods_answer_with_the_training_layout(readers, name):
    """Evaluation reads a document the way training did (the base weights, adapter off) and continues the
    way training's tail did, so the first answer token is the argmax of the training forward's logits."""
    document = documents(1, 50)[0]
    question = document["questions"][0]
    reader = readers["gist" if name == "gist" else "tuned"]
    context = torch.tensor(encode(reader.tokenizer, document["context"]))
    tail = torch.tensor(reader.gist_ids + encode(reader.tokenizer, question_query(question)))
    with torch.no_grad():
        logits = tail_logits(reader.model, context, tail, len(reader.gist_ids), torch.float32,
                             use_gist_mask=name == "gist")
    [method] = build_methods([name], readers, Retrieverless(), BUDGETS)
    rows = evaluate_documents([method], readers["base"], [document], 1, score_niah, warm_up_first=False)
    assert encode(reader.tokenizer, rows[0]["prediction"])[:1] == [int(logits[-1].argmax())]


def test_one_read_per_document_is_shared_and_charged_to_every_method_that_reads_it_whole(readers, monkeypatch):
    reads = []
    base = readers["base"]
    original = type(base).encode_context

    def counted(self, context_ids):
        reads.append(len(context_ids))
        return original(self, context_ids)

    monkeypatch.setattr(type(base), "encode_context", counted)
    import gistkv.evaluation.methods

    made = gistkv.evaluation.methods.SharedRead.__init__

    def slow_read(self, reader, context_ids, consumers):      # as if every read took 100 s
        made(self, reader, context_ids, consumers)
        self.seconds = 100.0

    monkeypatch.setattr(gistkv.evaluation.methods.SharedRead, "__init__", slow_read)
    methods = build_methods(["full/base", "full/tuned", "gist", "gist/empty"], readers, Retrieverless(), BUDGETS)
    docs = documents(3, 60)
    rows = evaluate_documents(methods, base, docs, 3, score_niah, warm_up_first=False)
    context_lengths = [len(encode(base.tokenizer, document["context"])) for document in docs]
    # one read of each document (gist/empty reads an empty document once, for all of them: no context tokens)
    assert [length for length in reads if length] == context_lengths
    assert len(rows) == 3 * 2 * 4          # documents x questions x methods
    by_method = {row["method"]: row for row in rows if row["id"] == docs[0]["id"] and row["question_index"] == 0}
    # the read is charged to every method that needs it (gist adds its compression), not to the empty gist
    assert all(100 <= by_method[name]["one_off_s"] < 101 for name in ("full/base", "full/tuned", "gist"))
    assert by_method["gist"]["one_off_s"] > by_method["full/base"]["one_off_s"]
    assert by_method["gist/empty"]["one_off_s"] < 1
    assert by_method["gist"]["budget_tokens"] == 2 and by_method["full/base"]["budget_tokens"] == context_lengths[0]
    assert by_method["gist"]["artifact_bytes"] > 0


def test_costs_add_up_per_document_and_per_question(readers):
    methods = build_methods(["full/base", "gist"], readers, Retrieverless(), BUDGETS)
    docs = documents(2, 70)
    rows = evaluate_documents(methods, readers["base"], docs, 3, score_niah, warm_up_first=False)
    for name in ("full/base", "gist"):
        mine = [row for row in rows if row["method"] == name]
        metrics = niah_metrics(mine)
        per_doc = {}
        for row in mine:
            per_doc.setdefault(row["id"], []).append(row)
        firsts = sorted(questions[0]["one_off_s"] + questions[0]["answer_s"] for questions in per_doc.values())
        per_question = sorted((q[0]["one_off_s"] + sum(r["answer_s"] for r in q)) / len(q) for q in per_doc.values())
        assert metrics["first_answer_s_tokens_16"] == pytest.approx(sum(firsts) / 2, abs=1e-5)
        assert metrics["per_question_s_tokens_16"] == pytest.approx(sum(per_question) / 2, abs=1e-5)
        assert metrics["n_accuracy"] == 2 and metrics["n_absent_declined"] == 2
    gist = niah_metrics([row for row in rows if row["method"] == "gist"])
    assert gist["compression_ratio_tokens_16"] == pytest.approx(rows[0]["context_tokens"] / 2)
    assert gist["full_kv_bytes_tokens_16"] == pytest.approx(gist["answer_kv_bytes"] * gist["compression_ratio_tokens_16"])


def test_evaluate_stage_runs_the_named_methods_and_refuses_unknown_ones(trained, tmp_path):
    base, root = trained
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    (tmp_path / "niah/en").mkdir(parents=True)
    (tmp_path / "niah/en/dev.jsonl").write_text("".join(json.dumps(d) + "\n" for d in documents(2, 80)))
    stage = load_stage("evaluate")
    args = ["--dataset", "niah_dev_en", "--params", str(tmp_path / "params.yaml"), "--base", str(base),
            "--gist", str(root / "gist"), "--lora", str(root / "lora"), "--niah", str(tmp_path / "niah"),
            "--gist-kv", str(tmp_path / "kv"), "--predictions", str(tmp_path / "eval"), "--metrics", str(tmp_path / "m")]
    done = CliRunner().invoke(stage.app, args + ["--group", "baselines", "--methods", "full/tuned,rag16/base"])
    assert done.exit_code == 0, done.output
    assert sorted(path.name for path in (tmp_path / "m/baselines/niah_dev_en").iterdir()) == ["full-tuned.json",
                                                                                             "rag16-base.json"]
    assert not (tmp_path / "kv").exists()                                           # baselines store nothing
    done = CliRunner().invoke(stage.app, args + ["--group", "gist"])
    assert done.exit_code == 0, done.output
    assert sorted(path.name for path in (tmp_path / "m/gist/niah_dev_en").iterdir()) == ["gist-empty.json",
                                                                                        "gist-gated.json", "gist.json"]
    stored = sorted(path.name for path in (tmp_path / "kv/niah_dev_en").glob("*.safetensors"))
    assert len(stored) == 4 and len([name for name in stored if name.endswith(".gated.safetensors")]) == 2  # no warm-up's
    for group, methods in (("baselines", 2), ("gist", 3)):
        assert len((tmp_path / f"eval/{group}/niah_dev_en.jsonl").read_text().splitlines()) == 2 * 2 * methods
    refused = CliRunner().invoke(stage.app, args + ["--group", "gist", "--methods", "full/tuned"])
    assert refused.exit_code == 1 and "--methods: full/tuned not among the gist group's gist, gist/gated, gist/empty" in refused.output
    refused = CliRunner().invoke(stage.app, args + ["--group", "rag"])
    assert refused.exit_code == 1 and "--group rag: unknown (expected baselines or gist)" in refused.output
    # RULER with no gist method in evaluate.ruler_methods: the gist stage writes empty results, loads nothing.
    params["evaluate"]["ruler_methods"] = ["full/base"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    (tmp_path / "ruler").mkdir()
    (tmp_path / "ruler/ruler.jsonl").write_text("")
    done = CliRunner().invoke(stage.app, args[2:] + ["--dataset", "ruler", "--ruler", str(tmp_path / "ruler"),
                                                     "--group", "gist", "--base", str(tmp_path / "no-model")])
    assert done.exit_code == 0 and "names no method of the gist group" in done.output, done.output
    assert (tmp_path / "eval/gist/ruler.jsonl").read_text() == "" and not list((tmp_path / "m/gist/ruler").iterdir())


TIMES = ("one_off_s", "answer_s", "ttft_s")


def stored(folder: Path) -> dict[str, str]:
    import hashlib

    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def untimed(path: Path) -> list[dict]:
    return [{key: value for key, value in json.loads(line).items() if key not in TIMES}
            for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_killed_evaluation_resumes_after_its_last_finished_document(trained, tmp_path, monkeypatch):
    import gistkv.evaluation.evaluate as evaluate_module

    base, root = trained
    (tmp_path / "niah/en").mkdir(parents=True)
    dev = tmp_path / "niah/en/dev.jsonl"
    dev.write_text("".join(json.dumps(d) + "\n" for d in documents(3, 80)))
    stage = load_stage("evaluate")

    def run(folder: str) -> object:
        return CliRunner().invoke(stage.app, [
            "--dataset", "niah_dev_en", "--base", str(base), "--gist", str(root / "gist"), "--lora", str(root / "lora"),
            "--niah", str(tmp_path / "niah"), "--gist-kv", str(tmp_path / folder / "kv"),
            "--predictions", str(tmp_path / folder / "eval"), "--metrics", str(tmp_path / folder / "m"),
            "--group", "gist"])

    assert run("whole").exit_code == 0
    real_run_document, calls, die_at = evaluate_module.run_document, [], [2]

    def counted(*args, **kwargs):
        """run_document that notes each document (not the warm-up's) and dies at the ``die_at``-th."""
        if not args[2]["id"].endswith("-warmup"):
            calls.append(args[2]["id"])
            if len(calls) == die_at[0]:
                raise RuntimeError("the session ended")
        return real_run_document(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "run_document", counted)
    assert run("killed").exit_code == 1 and not (tmp_path / "killed/eval/gist/niah_dev_en.jsonl").exists()
    partial = tmp_path / "killed/eval/gist/.niah_dev_en.partial"
    assert len(list((tmp_path / "killed/kv/.niah_dev_en.partial").glob("*.safetensors"))) == 2   # gist, gated
    calls.clear()
    die_at[0] = 0
    assert run("killed").exit_code == 0 and calls == ["d81", "d82"]        # d80 was kept
    assert untimed(tmp_path / "killed/eval/gist/niah_dev_en.jsonl") == untimed(tmp_path / "whole/eval/gist/niah_dev_en.jsonl")
    assert not partial.exists() and stored(tmp_path / "killed/kv/niah_dev_en") == stored(tmp_path / "whole/kv/niah_dev_en")

    # Rows of other inputs are never mixed in: the same ids with other text start over.
    calls.clear()
    die_at[0] = 2
    assert run("changed").exit_code == 1
    dev.write_text("".join(json.dumps(dict(d, context=d["context"] + " The end.")) + "\n" for d in documents(3, 80)))
    calls.clear()
    die_at[0] = 0
    assert run("changed").exit_code == 0 and calls == ["d80", "d81", "d82"]


def test_longbench_stage_runs_the_methods_on_downloaded_tasks(trained, tmp_path):
    """The 'available' branch of stages/evaluate_longbench.py on a two-record task."""
    base, root = trained
    longbench = tmp_path / "longbench"
    longbench.mkdir()
    (longbench / "status.json").write_text(json.dumps({"status": "available", "tasks": ["multifieldqa_en"]}))
    rows = [{"input": "Who wrote it?", "context": "Alice wrote the report in 2020. " * 12, "answers": ["Alice"],
             "_id": f"x{i}"} for i in range(2)]
    (longbench / "multifieldqa_en.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["evaluate_longbench"].update(methods=["full/base", "full/tuned", "gist"], max_samples=2, max_context_tokens=48)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    stage = load_stage("evaluate_longbench")
    args = ["--params", str(tmp_path / "params.yaml"), "--longbench", str(longbench), "--base", str(base),
            "--gist", str(root / "gist"), "--lora", str(root / "lora"), "--out", str(tmp_path / "out"),
            "--metrics", str(tmp_path / "longbench.json")]
    done = CliRunner().invoke(stage.app, args)
    assert done.exit_code == 0, done.output
    scores = json.loads((tmp_path / "longbench.json").read_text())
    assert set(scores) == {"evaluated", "full/base.multifieldqa_en.score", "full/tuned.multifieldqa_en.score",
                           "gist.multifieldqa_en.score"}
    assert all(0 <= value <= 100 for key, value in scores.items() if key != "evaluated")
    assert len((tmp_path / "out/multifieldqa_en.jsonl").read_text().splitlines()) == 2 * 3


@pytest.mark.parametrize("method", ["full/tuned", "gist", "gist/gated"])
def test_a_method_alone_in_its_own_process_reports_its_costs(trained, method):
    """stage measure_costs: a fresh process per method, only its own model loaded, the same accounting."""
    from gistkv.evaluation.costs import cost_summary, measure_method
    from gistkv.evaluation.evaluate import EvaluateParams
    from gistkv.params import load_section

    base, root = trained
    settings = load_section(REPO / "params.yaml", "evaluate", EvaluateParams)
    docs = documents(2, 90)
    result = measure_method(method, base, root / "gist", root / "lora", docs, settings)
    assert len(result["rows"]) == 2 * 2 and {row["method"] for row in result["rows"]} == {method}
    summary = cost_summary(method, result)
    assert summary["peak_rss_mb"] > 50 and summary["load_s"] > 0 and summary["n_documents"] == 2
    assert summary["first_answer_s_tokens_16"] > 0 and summary["per_question_s_tokens_16"] > 0


def test_a_method_whose_process_fails_is_a_one_line_error_not_a_hang(trained, tmp_path):
    from gistkv.evaluation.costs import measure_method
    from gistkv.evaluation.evaluate import EvaluateParams
    from gistkv.params import load_section

    base, root = trained
    settings = load_section(REPO / "params.yaml", "evaluate", EvaluateParams)
    with pytest.raises(GistkvError, match="measure_costs: gist: .*no-gist"):       # the child's error, one line
        measure_method("gist", base, tmp_path / "no-gist", root / "lora", documents(1, 90), settings)


def test_the_gated_gist_declines_what_no_passage_is_about_and_otherwise_answers_as_the_gist(readers):
    from test_presence import bag_of_words

    methods = build_methods(["gist", "gist/gated"], readers, Retrieverless(), BUDGETS, gate=(bag_of_words, 0.5))
    rows = evaluate_documents(methods, readers["base"], documents(2, 50), 4, score_niah, warm_up_first=False)
    plain = {(row["id"], row["kind"]): row for row in rows if row["method"] == "gist"}
    gated = {(row["id"], row["kind"]): row for row in rows if row["method"] == "gist/gated"}
    assert {kind for _, kind in gated} == {"present", "absent"} and len(gated) == 4
    for (doc_id, kind), row in gated.items():
        if kind == "absent":        # "What is the order number?" shares only "what is the" with a passage
            assert row["gated"] and row["declined"] and row["prediction"] == "The document does not say."
            assert row["presence"] < 0.5 and row["min_token_prob"] != row["min_token_prob"]     # nan: no model
        else:                       # "What is the pass key?" has its passage: the gist answers, unchanged
            assert not row["gated"] and row["presence"] > 0.5
            assert row["prediction"] == plain[(doc_id, kind)]["prediction"]
        assert row["artifact_bytes"] > plain[(doc_id, kind)]["artifact_bytes"]     # the index is stored too
