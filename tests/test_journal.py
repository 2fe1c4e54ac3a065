"""gistkv.evaluation.journal: only whole documents are kept across a kill, and only for the same inputs."""

import json

from gistkv.evaluation.journal import ROWS, Journal


def rows(doc_id: str, count: int = 2) -> list[dict]:
    return [{"id": doc_id, "method": f"m{index}", "prediction": "12345"} for index in range(count)]


def test_a_document_cut_short_by_a_kill_is_dropped_whole(tmp_path):
    journal = Journal(tmp_path / "work", {"dataset": "a"})
    journal.add(rows("d0"))
    with (tmp_path / "work" / ROWS).open("a", encoding="utf-8") as out:
        out.write(json.dumps(rows("d1")[0]) + "\n" + '{"id": "d1", "meth')       # killed mid-line, before d1 ended
    again = Journal(tmp_path / "work", {"dataset": "a"})
    assert again.finished == {"d0"} and again.rows_in_order([{"id": "d0"}]) == rows("d0")
    again.add(rows("d1"))
    assert Journal(tmp_path / "work", {"dataset": "a"}).rows_in_order([{"id": "d1"}, {"id": "d0"}]) == rows("d1") + rows("d0")


def test_other_inputs_start_over_and_say_what_changed(tmp_path, caplog):
    Journal(tmp_path / "work", {"dataset": "a", "code": "x"}).add(rows("d0"))
    (tmp_path / "work" / "artifacts" / "d0.safetensors").write_bytes(b"kv")
    fresh = Journal(tmp_path / "work", {"dataset": "a", "code": "y"})
    assert not fresh.finished and not list(fresh.artifacts.iterdir())
    assert "starting over (code changed" in caplog.text


def test_finish_moves_the_artifacts_into_place(tmp_path):
    journal = Journal(tmp_path / "work", {"dataset": "a"})
    (journal.artifacts / "d0.safetensors").write_bytes(b"kv")
    (tmp_path / "kv").mkdir()
    (tmp_path / "kv" / "old.safetensors").write_bytes(b"old")
    journal.finish(tmp_path / "kv")
    assert [path.name for path in (tmp_path / "kv").iterdir()] == ["d0.safetensors"] and not (tmp_path / "work").exists()


def test_the_machines_that_timed_the_documents_are_kept(tmp_path, monkeypatch):
    import gistkv.evaluation.journal as journal_module

    monkeypatch.setattr(journal_module, "host_label", lambda: "Xeon, AVX512, 2 cores")
    Journal(tmp_path / "work", {"dataset": "a"}).add(rows("d0"))
    monkeypatch.setattr(journal_module, "host_label", lambda: "AMD EPYC, AVX2, 2 cores")
    resumed = Journal(tmp_path / "work", {"dataset": "a"})
    assert resumed.hosts() == ["Xeon, AVX512, 2 cores"]
    resumed.add(rows("d1"))
    assert resumed.hosts() == ["AMD EPYC, AVX2, 2 cores", "Xeon, AVX512, 2 cores"]
