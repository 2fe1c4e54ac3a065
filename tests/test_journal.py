"""gistkv.evaluation.journal: only whole documents with their artifacts are kept across a kill, only for the
same inputs, and a kill inside ``finish`` leaves a state a rerun completes."""

import json
import os

import pytest

import gistkv.evaluation.journal as journal_module
from gistkv.evaluation.journal import ROWS, Journal

INPUTS = {"dataset": "a"}
real_replace, real_rmtree = os.replace, journal_module.shutil.rmtree


def rows(doc_id: str, count: int = 2) -> list[dict]:
    return [{"id": doc_id, "method": f"m{index}", "prediction": "12345"} for index in range(count)]


def evaluated(journal: Journal, doc_id: str, artifact: bool = True) -> None:
    """A document as the evaluation makes it: its gist file (if any), then its rows."""
    if artifact:
        (journal.artifacts / f"{doc_id}.safetensors").write_bytes(doc_id.encode())
    journal.add({"id": doc_id}, rows(doc_id))


def test_a_document_cut_short_by_a_kill_is_dropped_whole(tmp_path):
    journal = Journal(tmp_path / "work", tmp_path / "kv", INPUTS)
    evaluated(journal, "d0")
    with (tmp_path / "work" / ROWS).open("a", encoding="utf-8") as out:
        out.write(json.dumps(rows("d1")[0]) + "\n" + '{"id": "d1", "meth')       # killed mid-line, before d1 ended
    again = Journal(tmp_path / "work", tmp_path / "kv", INPUTS)
    assert again.finished == {"d0"} and again.charged_once and again.rows_in_order([{"id": "d0"}]) == rows("d0")
    evaluated(again, "d1")
    last = Journal(tmp_path / "work", tmp_path / "kv", INPUTS)
    assert last.rows_in_order([{"id": "d1"}, {"id": "d0"}]) == rows("d1") + rows("d0")
    with pytest.raises(ValueError, match="'d1' twice"):
        evaluated(last, "d1")


def test_a_document_whose_artifacts_went_missing_is_evaluated_again(tmp_path):
    journal = Journal(tmp_path / "work", tmp_path / "kv", INPUTS)
    evaluated(journal, "d0")
    evaluated(journal, "d1")
    evaluated(journal, "d2", artifact=False)        # a method set that stores nothing
    (journal.artifacts / "d1.safetensors").unlink()
    assert Journal(tmp_path / "work", tmp_path / "kv", INPUTS).finished == {"d0", "d2"}


def test_other_inputs_start_over_and_say_what_changed(tmp_path, caplog):
    evaluated(Journal(tmp_path / "work", tmp_path / "kv", {"dataset": "a", "code": "x"}), "d0")
    fresh = Journal(tmp_path / "work", tmp_path / "kv", {"dataset": "a", "code": "y"})
    assert not fresh.finished and not fresh.charged_once and not list(fresh.artifacts.iterdir())
    assert "starting over (code changed" in caplog.text


@pytest.mark.parametrize("killed_after", [None, "set aside", "swapped in"])
def test_finish_swaps_the_artifacts_in_and_a_kill_inside_it_is_completed_by_a_rerun(tmp_path, monkeypatch, killed_after):
    (tmp_path / "kv").mkdir()
    (tmp_path / "kv" / "old.safetensors").write_bytes(b"old")
    journal = Journal(tmp_path / "work", tmp_path / "kv", INPUTS)
    evaluated(journal, "d0")
    if killed_after == "set aside":        # the old folder moved aside, the new one not yet in
        monkeypatch.setattr(journal_module.os, "replace", lambda source, target: (_ for _ in ()).throw(KeyboardInterrupt)
                            if source == journal.artifacts else real_replace(source, target))
    if killed_after == "swapped in":       # the new folder in, the journal not yet removed
        monkeypatch.setattr(journal_module.shutil, "rmtree", lambda path: (_ for _ in ()).throw(KeyboardInterrupt)
                            if path == tmp_path / "work" else real_rmtree(path))
    if killed_after:
        with pytest.raises(KeyboardInterrupt):
            journal.finish()
        monkeypatch.undo()
        rerun = Journal(tmp_path / "work", tmp_path / "kv", INPUTS)
        if killed_after == "swapped in":        # its gist file already moved: d0 is evaluated again
            assert rerun.finished == set()
            evaluated(rerun, "d0")
        else:
            assert rerun.finished == {"d0"}
        journal = rerun
    journal.finish()
    assert sorted(path.name for path in (tmp_path / "kv").iterdir()) == ["d0.safetensors"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kv"]


def test_the_machines_that_timed_the_documents_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "host_label", lambda: "Xeon, AVX512, 2 cores")
    evaluated(Journal(tmp_path / "work", tmp_path / "kv", INPUTS), "d0")
    monkeypatch.setattr(journal_module, "host_label", lambda: "AMD EPYC, AVX2, 2 cores")
    resumed = Journal(tmp_path / "work", tmp_path / "kv", INPUTS)
    assert resumed.hosts() == ["Xeon, AVX512, 2 cores"]
    evaluated(resumed, "d1")
    assert resumed.hosts() == ["AMD EPYC, AVX2, 2 cores", "Xeon, AVX512, 2 cores"]
