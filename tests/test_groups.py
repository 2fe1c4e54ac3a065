"""gistkv.evaluation.groups: each evaluation stage runs its own group of methods, named as params name them."""

from pathlib import Path

import pytest

from gistkv.errors import GistkvError
from gistkv.evaluation.evaluate import EvaluateParams
from gistkv.evaluation.groups import group_methods, unique_ids
from gistkv.params import load_section

SETTINGS = load_section(Path(__file__).parent.parent / "params.yaml", "evaluate", EvaluateParams)


def test_the_groups_split_the_methods_and_ruler_keeps_its_own():
    baselines = group_methods(SETTINGS, "niah_test_en", "baselines", "")
    assert group_methods(SETTINGS, "niah_test_en", "gist", "") == ["gist", "gist/empty"]
    assert baselines and all(name.startswith(("full/", "rag")) for name in baselines)
    assert set(group_methods(SETTINGS, "ruler", "baselines", "")) == set(SETTINGS.ruler_methods) & set(baselines)


def test_an_unknown_group_or_a_method_of_the_other_group_is_refused():
    with pytest.raises(GistkvError, match="--group rag: unknown"):
        group_methods(SETTINGS, "niah_test_en", "rag", "")
    with pytest.raises(GistkvError, match="--methods: gist not among the baselines group's"):
        group_methods(SETTINGS, "niah_test_en", "baselines", "full/base,gist")


def test_repeated_document_ids_are_refused_naming_the_file():
    with pytest.raises(GistkvError, match="dev.jsonl: document id 'd1' appears more than once"):
        unique_ids([{"id": "d1"}, {"id": "d2"}, {"id": "d1"}], Path("data/niah/en/dev.jsonl"))
