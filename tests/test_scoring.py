import pytest

from gistkv.near_misses import wrong_digit_positions
from gistkv.scoring import qa_f1, score_passkey, wilson_interval


def test_passkey_scoring_and_hallucination():
    assert score_passkey(" 12345. Remember", "12345")["correct"]
    wrong = score_passkey(" 54321", "12345")
    assert not wrong["correct"] and wrong["hallucinated"]
    silent = score_passkey(" I do not know", "12345")
    assert not silent["correct"] and not silent["hallucinated"]


def test_wilson_interval_hand_computed():
    low, high = wilson_interval(18, 20)   # p = 0.9, n = 20
    assert low == pytest.approx(0.6990, abs=1e-3) and high == pytest.approx(0.9721, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0


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


def test_near_misses_command_reads_prediction_files(tmp_path):
    from typer.testing import CliRunner

    from gistkv.cli import app
    from gistkv.io import write_jsonl

    path = tmp_path / "gist_niah_en.jsonl"
    write_jsonl(path, [{"variant": "passkey", "answer": "86196", "asserted": "86116", "correct": False},
                       {"variant": "passkey", "answer": "12345", "asserted": "12345", "correct": True},
                       {"variant": "keyed", "answer": "11111", "asserted": "11112", "correct": False}])
    done = CliRunner().invoke(app, ["near-misses", str(path)])
    assert done.exit_code == 0, done.output
    assert done.output.strip() == (f"{path}: 2 single passkey, 1 wrong, 1 near misses, 1 one digit off; "
                                   "wrong digits by position 1:0 2:0 3:0 4:1 5:0")
    missing = CliRunner().invoke(app, ["near-misses", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 1 and "nope.jsonl: file not found" in missing.output
