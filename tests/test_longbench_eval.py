"""LongBench scoring and prompt handling (the data itself cannot be downloaded here)."""

import pytest

from gistkv.compressor import untrained_compressor
from gistkv.errors import GistkvError
from gistkv.longbench_eval import (MAX_NEW_TOKENS, build_prompt, evaluate_task, retrieval_score,
                                   rouge_l, score, to_method_record, truncate_middle)
from gistkv.methods import FullContext, OnTheFlyGist

RECORD = {"input": "Who wrote it?", "context": "Alice wrote the report in 2020. " * 30, "answers": ["Alice"],
          "_id": "x1"}


def test_prompt_split_and_middle_truncation():
    prefix, context, suffix = build_prompt("multifieldqa_en", RECORD)
    assert prefix.startswith("Read the following text") and context == RECORD["context"]
    assert suffix.endswith("Question: Who wrote it?\nAnswer:")
    assert truncate_middle(list(range(10)), 4) == [0, 1, 8, 9]
    with pytest.raises(GistkvError, match="no prompt for 'trec'"):
        build_prompt("trec", RECORD)


def test_metrics_hand_computed():
    assert score("hotpotqa", "Alice\nand more", ["alice", "Bob"]) == 1.0      # first line, best reference
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    assert rouge_l("대한민국 헌법 제1조", "헌법 제1조") == pytest.approx(0.8)
    assert retrieval_score("Paragraph 3, maybe 4", "Paragraph 3") == 0.5
    assert score("passage_retrieval_en", "Paragraph 7", ["Paragraph 7"]) == 1.0


def test_full_and_gist_run_on_a_tiny_model(tiny_model, tokenizer):
    record = to_method_record("multifieldqa_en", RECORD, 0, tokenizer, max_context_tokens=64)
    assert record["context_tokens"] == 64 and record["id"] == "multifieldqa_en-x1"
    for method in (FullContext(tiny_model, tokenizer, "cpu"),
                   OnTheFlyGist(untrained_compressor(tiny_model, tokenizer, num_gist_tokens=2))):
        predictions, summary = evaluate_task(method, "multifieldqa_en", [record])
        assert summary["n"] == 1 and 0 <= summary["score"] <= 100 and summary["metric"] == "qa_f1"
        assert len(tokenizer(predictions[0]["prediction"]).input_ids) <= MAX_NEW_TOKENS["multifieldqa_en"] + 1
