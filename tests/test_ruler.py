"""RULER's synthetic tasks, generated in the model's tokens: RULER's inputs, answers in the context, within length."""

import re

import pytest

from gistkv.core.prompt import encode
from gistkv.data.ruler import RulerParams, generate, generate_task
from gistkv.data.ruler_source import task_table
from gistkv.errors import GistkvError
from gistkv.params import from_mapping

RULER_TASKS = {"niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
               "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe", "qa_1", "qa_2"}
# RULER's tokens_to_generate per task kind (its data/synthetic/constants.py).
TOKENS_TO_GENERATE = {"niah": 128, "variable_tracking": 30, "common_words_extraction": 120,
                      "freq_words_extraction": 50, "qa": 32}
# Lengths at which the tiny byte-level tokenizer fits each task (cwe's shown example alone is ~900 of its tokens).
CASES = [("niah_single_2", 512), ("niah_multikey_2", 1024), ("niah_multivalue", 1024), ("vt", 1024), ("fwe", 512),
         ("cwe", 2048), ("qa_1", 1024)]
SEED, CAP = 42, 48


@pytest.fixture(scope="module")
def tok():
    from tiny import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="module")
def samples(tok):
    return {case: generate_task(case[0], case[1], 2, tok, seed=SEED, max_new_tokens=CAP) for case in CASES}


def single_needle(config: dict, text: str) -> str:
    """RULER's niah.py rewords its template when one value is asked ("A special magic number ... is")."""
    args = config["args"]
    if config["task"] == "niah" and args["num_needle_q"] * args["num_needle_v"] == 1:
        for old, new in (("Some", "A"), ("are all", "is"), ("are", "is"), ("answers", "answer")):
            text = text.replace(old, new)
    return text


def ruler_input(config: dict, context: str) -> re.Pattern:
    """RULER's input (template + answer prefix) as a pattern: the context literal, other placeholders captured."""
    template = single_needle(config, config["template"] + config["answer_prefix"])
    pieces, seen = [], set()
    for part in re.split(r"(\{\w+\})", template):
        name = part[1:-1] if re.fullmatch(r"\{\w+\}", part) else None
        if name is None:
            pieces.append(re.escape(part))
        elif name == "context":
            pieces.append(re.escape(context))
        else:
            pieces.append(f"(?P={name})" if name in seen else f"(?P<{name}>.*?)")
            seen.add(name)
    # cwe and vt show one solved example first: RULER's input ends with the template, after that example.
    lead = {"common_words_extraction": "(?s).*\n", "variable_tracking": "(?s) .*\n\n\n\n"}.get(config["task"], "(?s)")
    return re.compile(lead + "".join(pieces))


def test_vt_shows_rulers_worked_example_with_its_answer_renamed(samples):
    """RULER's vt puts one solved 3-letter example (answer renamed per sample) before the task."""
    first = samples[("vt", 1024)][0]["prefix"]
    example = first.split("\n\n\n\n")[0]
    assert example.startswith(" Memorize and track") and re.search(r"VAR [A-Z]{3} = \d{5}", example)
    answer = example.rsplit("they are: ", 1)[1].split()
    assert len(answer) == 5 and all(re.fullmatch(r"[A-Z]{3}", name) for name in answer)
    assert first.endswith("Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n")


def test_task_table_is_rulers_13_tasks():
    table = task_table()
    assert set(table) == RULER_TASKS
    for name, config in table.items():
        assert "{context}" in config["template"] and config["answer_prefix"].strip(), name
        assert config["tokens_to_generate"] == TOKENS_TO_GENERATE[config["task"]], name
    assert table["niah_multikey_3"]["args"]["type_needle_v"] == "uuids" and table["qa_2"]["args"]["dataset"] == "hotpotqa"


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case[0]}-{case[1]}")
def test_samples_are_rulers_input_with_the_answers_in_the_context(samples, tok, case):
    name, length = case
    config = task_table()[name]
    for doc in samples[case]:
        question = doc["questions"][0]
        full = doc["prefix"] + doc["context"] + question["query"]
        match = ruler_input(config, doc["context"]).fullmatch(full)
        assert match, f"{name}: not RULER's template"
        # The query (what follows the context) ends with RULER's answer prefix: the answer is generated right after.
        assert question["query"].endswith(re.split(r"\{\w+\}", single_needle(config, config["answer_prefix"]))[-1])
        answers = question["answers"]
        assert answers and question["metric"] == ("part" if config["task"] == "qa" else "all")
        assert question["max_new_tokens"] == min(config["tokens_to_generate"], CAP)
        kind = config["task"]
        if kind == "niah":
            keys = re.split(r", and |, ", match["query"])
            assert len(keys) == config["args"]["num_needle_q"]
            plural = config["args"]["type_needle_v"]
            one_value = single_needle(config, "are") == "is"
            assert match["type_needle_v"] == (plural[:-1] if one_value else plural)    # "number" when one is asked
            needle = "One of the special magic {} for {} is: {}."
            for answer in answers:
                assert any(needle.format(config["args"]["type_needle_v"], key, answer) in doc["context"] for key in keys)
        elif kind == "variable_tracking":
            value = match["query"]
            assert match["num_v"] == str(len(answers)) == str(config["args"]["num_hops"] + 1)
            assert f"VAR {answers[0]} = {value}" in doc["context"]
            assert all(f"VAR {answer} = " in doc["context"] for answer in answers)
        elif kind == "qa":
            assert any(answer in doc["context"] for answer in answers)
        else:       # cwe, fwe: the words to name are in the list
            assert all(answer in doc["context"].split() for answer in answers)
        used = len(encode(tok, full)) + config["tokens_to_generate"]
        assert length // 2 < used <= length, f"{name}: {used} tokens of {length}"


def test_same_seed_same_samples_other_seed_other_samples(samples, tok):
    case = ("niah_multikey_2", 1024)
    assert generate_task(*case, 2, tok, seed=SEED, max_new_tokens=CAP) == samples[case]
    other = generate_task(*case, 2, tok, seed=SEED + 1, max_new_tokens=CAP)
    assert [doc["context"] for doc in other] != [doc["context"] for doc in samples[case]]


def test_a_qa_sample_too_long_for_the_length_keeps_only_its_own_documents(tok):
    """At 512 tiny-tokenizer tokens one SQuAD paragraph and the template already overflow: the sample is still
    written, with the smallest haystack (the question's own paragraph, so it stays answerable), over the length."""
    config = task_table()["qa_1"]
    for doc in generate_task("qa_1", 512, 2, tok, seed=SEED, max_new_tokens=CAP):
        question = doc["questions"][0]
        assert doc["context"].startswith("Document 1:\n") and "Document 2:" not in doc["context"]
        assert any(answer in doc["context"] for answer in question["answers"])
        assert len(encode(tok, doc["prefix"] + doc["context"] + question["query"])) + config["tokens_to_generate"] > 512


def test_generate_runs_every_task_at_every_length(tok):
    params = from_mapping(RulerParams, {"tasks": ["niah_single_1", "fwe"], "context_lengths": [512, 1024],
                                        "samples_per_length": [2, 1], "max_new_tokens": 16, "seed": 1}, "ruler")
    documents = generate(params, tok)
    assert [(doc["task"], doc["target_tokens"]) for doc in documents] == [
        ("niah_single_1", 512), ("niah_single_1", 512), ("niah_single_1", 1024), ("fwe", 512), ("fwe", 512), ("fwe", 1024)]
    assert len({doc["id"] for doc in documents}) == len(documents)
    assert {doc["questions"][0]["max_new_tokens"] for doc in documents} == {16}


@pytest.mark.parametrize("change, message", [
    ({"tasks": ["niah_single_1", "niah_single_9"]}, "ruler.tasks: unknown RULER task 'niah_single_9'"),
    ({"context_lengths": [256]}, "ruler.context_lengths: must be at least 512 tokens"),
    ({"samples_per_length": [1, 1]}, "ruler.samples_per_length: must give one count per context length"),
    ({"max_new_tokens": 0}, "ruler.max_new_tokens: must be positive"),
])
def test_bad_ruler_params_give_one_line_naming_the_key(change, message):
    mapping = {"tasks": ["niah_single_1"], "context_lengths": [1024], "samples_per_length": [1], "max_new_tokens": 48,
               "seed": 42, **change}
    with pytest.raises(GistkvError, match=re.escape(message)) as raised:
        from_mapping(RulerParams, mapping, "ruler")
    assert "\n" not in str(raised.value)
