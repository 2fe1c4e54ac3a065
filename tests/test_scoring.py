"""Scoring: needle answers and declines, RULER's string match (against RULER's own code), Wilson, McNemar, F1."""

import os

import pytest

from gistkv.evaluation.scoring import mcnemar_exact, qa_f1, ruler_string_match, score_number, wilson_interval
from gistkv.reporting.near_misses import present_near_misses, wrong_digit_positions

# sha256 of long_context_eval/eval/synthetic/constants.py in nvidia-long-context-eval 26.3 (RULER's scoring code).
RULER_EVAL_CONSTANTS_SHA256 = "a7041631f24a17defd433f07b65340bec0ff27c9d20ecb852f44cfe1d386c59f"


@pytest.mark.parametrize("prediction, key, correct, declined, wrong_number", [
    (" 12345. Remember", "12345", True, False, False),
    (" It is 12345, not 54321.", "12345", True, False, False),      # the first number is the answer
    (" 54321", "12345", False, False, True),
    (" 1234", "12345", False, False, True),
    (" The document does not say.", "12345", False, True, False),   # a decline where the fact is held: wrong
    (" The document does not say.", None, True, True, False),       # absent fact: a decline is right
    (" 12345", None, False, False, True),                           # absent fact: any number is a hallucination
])
def test_score_number(prediction, key, correct, declined, wrong_number):
    scored = score_number(prediction, key)
    assert (scored["correct"], scored["declined"], scored["wrong_number"]) == (correct, declined, wrong_number)


def test_score_number_reports_the_asserted_number():
    assert score_number(" The key: 0042 then 7", "42")["asserted"] == "0042"
    assert score_number(" none", "42")["asserted"] is None


def test_wilson_interval_hand_computed():
    low, high = wilson_interval(18, 20)   # p = 0.9, n = 20
    assert low == pytest.approx(0.6990, abs=1e-3) and high == pytest.approx(0.9721, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert all(value != value for value in wilson_interval(0, 0))    # no data: NaN, not a fake certainty


def test_mcnemar_exact_hand_computed():
    # 12 discordant pairs, 2 the other way: 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 158 / 4096
    assert mcnemar_exact(10, 2) == pytest.approx(158 / 4096) and round(mcnemar_exact(10, 2), 4) == 0.0386
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0


def test_qa_f1_english_korean_chinese():
    assert qa_f1("The cat sat", "a cat sat down") == pytest.approx(2 * (2 / 2) * (2 / 3) / (1 + 2 / 3))
    assert qa_f1("대한민국 헌법 제1조", "헌법 제1조") == pytest.approx(0.8)
    assert qa_f1("北京是首都", "北京") == pytest.approx(2 * 0.4 * 1 / 1.4)
    assert qa_f1("nothing", "else") == 0.0


def test_wrong_digit_positions_counts_near_misses_only():
    records = [{"answer": "86196", "asserted": "86116"}, {"answer": "65376", "asserted": "65366"},
               {"answer": "10750", "asserted": "17500"}, {"answer": "12345", "asserted": "12345"},
               {"answer": "12345", "asserted": "999"}, {"answer": "12345", "asserted": None}]
    assert wrong_digit_positions(records) == {"answers": 6, "wrong": 5, "near_misses": 3, "one_digit_off": 2,
                                              "by_position": {1: 0, 2: 1, 3: 1, 4: 3, 5: 0}}
    assert wrong_digit_positions([]) == {"answers": 0, "wrong": 0, "near_misses": 0, "one_digit_off": 0, "by_position": {}}


def evaluation_rows():
    """Rows as the evaluation writes them: gist and full/base, present and absent questions."""
    return [{"method": "gist", "kind": "present", "answer": "86196", "asserted": "86116"},
            {"method": "gist", "kind": "present", "answer": "12345", "asserted": "12345"},
            {"method": "gist", "kind": "absent", "answer": "The document does not say.", "asserted": "55555"},
            {"method": "full/base", "kind": "present", "answer": "11111", "asserted": "11112"},
            {"method": "full/base", "kind": "present", "answer": "22222", "asserted": "22222"}]


def test_present_near_misses_reads_one_method_on_questions_whose_fact_is_held():
    assert present_near_misses(evaluation_rows(), "gist") == {
        "answers": 2, "wrong": 1, "near_misses": 1, "one_digit_off": 1, "by_position": {1: 0, 2: 0, 3: 0, 4: 1, 5: 0}}
    assert present_near_misses(evaluation_rows(), "full/base")["by_position"] == {1: 0, 2: 0, 3: 0, 4: 0, 5: 1}
    assert present_near_misses(evaluation_rows(), "rag128/base")["answers"] == 0


def test_near_misses_command_reads_evaluation_rows(tmp_path):
    from typer.testing import CliRunner

    from gistkv.cli import app
    from gistkv.io import write_jsonl

    path = tmp_path / "niah_test_en.jsonl"
    write_jsonl(path, evaluation_rows())
    done = CliRunner().invoke(app, ["near-misses", str(path), "--method", "gist"])
    assert done.exit_code == 0, done.output
    assert done.output.strip() == (f"{path} gist: 2 answers, 1 wrong, 1 near misses, 1 one digit off; "
                                   "wrong digits by position 1:0 2:0 3:0 4:1 5:0")
    missing = CliRunner().invoke(app, ["near-misses", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 1 and "nope.jsonl: file not found" in missing.output


@pytest.fixture(scope="module")
def ruler_eval(tmp_path_factory):
    """RULER's own scoring functions, exec'd from the pinned wheel (read, never installed or imported)."""
    from gistkv.packages import cache_dir
    from gistkv.data.wheel_file import WheelFile, fetch

    # Beside the templates (data/synthetic/constants.py) in the same wheel: members keep their paths.
    path = fetch(WheelFile("nvidia-long-context-eval==26.3", "long_context_eval/eval/synthetic/constants.py",
                           RULER_EVAL_CONSTANTS_SHA256), cache_dir() / "nvidia-long-context-eval-26.3")
    namespace: dict = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return namespace


@pytest.mark.parametrize("prediction, references", [
    ("The special magic number for apple is 1234567.", ["1234567"]),
    ("Numbers: 1234567 and 7654321", ["1234567", "7654321", "1111111"]),     # 2 of 3
    ("VAR ABCDE, VAR fghij", ["ABCDE", "FGHIJ", "KLMNO"]),                   # case-insensitive
    (" nothing here ", ["1234567"]),
    ("  France.  ", ["france", "Normandy"]),                                 # qa: any one suffices for part
    ("in the 10th and 11th centuries", ["10th and 11th centuries", "10th century"]),
])
@pytest.mark.parametrize("metric, ruler_name", [("all", "string_match_all_per_sample"),
                                                ("part", "string_match_part_per_sample")])
def test_ruler_string_match_is_rulers_own_score(ruler_eval, prediction, references, metric, ruler_name):
    expected = ruler_eval[ruler_name]([prediction], [references])[0]
    assert 100 * ruler_string_match(prediction, references, metric) == pytest.approx(expected)


def test_ruler_metric_names_are_rulers_choice_per_task(ruler_eval):
    from gistkv.data.ruler import METRICS

    for kind, metric in METRICS.items():
        assert ruler_eval["TASKS"][kind]["metric_fn_per_sample"].__name__ == f"string_match_{metric}_per_sample"


def test_ruler_string_match_rejects_an_unknown_metric():
    with pytest.raises(ValueError, match="'any'"):
        ruler_string_match("x", ["x"], "any")
