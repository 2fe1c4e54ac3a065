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
    assert group_methods(SETTINGS, "niah_test_en", "gist", "") == ["gist", "gist/gated", "gist/empty"]
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


def test_the_report_reads_the_same_groups():
    from gistkv.evaluation.groups import GROUPS
    from gistkv.reporting.report import METHOD_GROUPS

    assert METHOD_GROUPS == GROUPS


def test_a_resumed_gist_run_depends_only_on_the_keys_its_stage_lists():
    import yaml

    from gistkv.evaluation.groups import group_settings

    stage = yaml.safe_load((Path(__file__).parent.parent / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    listed = [key.removeprefix("evaluate.") for key in stage["evaluate_gist"]["do"]["params"]]
    assert sorted(group_settings(SETTINGS, "gist")) == sorted(listed)
    assert group_settings(SETTINGS, "baselines")["rag"]["budgets"] == SETTINGS.rag.budgets
