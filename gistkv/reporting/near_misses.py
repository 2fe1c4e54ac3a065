"""Where wrong passkey answers go wrong, digit by digit.

A model that lost the key answers with any number; one that holds the digits but not their
order answers with the key's length and one or two digits off. Counting the wrong positions
tells the two apart (and, for the gist runs here, points at the 4th digit).

    gistkv near-misses data/eval/gist/niah_test_en.jsonl --method gist
    >>> wrong_digit_positions([{"answer": "86196", "asserted": "86116"}, {"answer": "12345", "asserted": "7"}])
    {'answers': 2, 'wrong': 2, 'near_misses': 1, 'one_digit_off': 1, 'by_position': {1: 0, 2: 0, 3: 0, 4: 1, 5: 0}}
"""

from __future__ import annotations


def wrong_digit_positions(records: list[dict]) -> dict:
    """How many answers there are, how many are wrong, and where those of the key's length (near
    misses) differ from the key (1-based digit positions).

    ``records`` carry ``answer`` and the scored ``asserted`` number (``gistkv.evaluation.scoring.score_number``);
    answers without a number and numbers of another length are wrong but not near misses.
    """
    misses = [(record["answer"], record["asserted"]) for record in records
              if record.get("asserted") and record["asserted"] != record["answer"]
              and len(record["asserted"]) == len(record["answer"])]
    width = max((len(answer) for answer, _ in misses), default=0)
    by_position = {position: 0 for position in range(1, width + 1)}
    one_off = 0
    for answer, asserted in misses:
        differ = [position for position, (want, got) in enumerate(zip(answer, asserted), start=1) if want != got]
        one_off += len(differ) == 1
        for position in differ:
            by_position[position] += 1
    wrong = sum(record.get("asserted") != record["answer"] for record in records)
    return {"answers": len(records), "wrong": wrong, "near_misses": len(misses), "one_digit_off": one_off,
            "by_position": by_position}


def present_near_misses(predictions: list[dict], method: str) -> dict:
    """``wrong_digit_positions`` over one method's answers to questions whose document holds the fact."""
    return wrong_digit_positions([row for row in predictions if row.get("method") == method
                                  and row.get("kind") == "present"])


def question_blind(predictions: list[dict], method: str) -> tuple[int, int]:
    """(documents whose questions all got the same answer, documents with more than one question) for
    ``method``: a reader that gives one document the same answer whatever it is asked (the fact it holds
    and the one it does not) is not reading the question."""
    answers: dict[str, list[str]] = {}
    for row in predictions:
        if row.get("method") == method:
            answers.setdefault(row["id"], []).append(" ".join(str(row.get("prediction", "")).split()))
    asked = [given for given in answers.values() if len(given) > 1]
    return sum(len(set(given)) == 1 for given in asked), len(asked)
