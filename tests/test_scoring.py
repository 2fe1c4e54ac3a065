import pytest

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
