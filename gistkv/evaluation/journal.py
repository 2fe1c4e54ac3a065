"""A resumable evaluation: finished documents are kept on disk, so a killed run goes on where it stopped.

Evaluating a 200-document test split takes hours on a 2-core CPU, and a session (or a preempted GPU
job) can end at any minute. ``Journal`` appends each finished document's rows to ``rows.jsonl`` in
its work folder (flushed to disk) and keeps the run's stored artifacts (gist KV files) beside them; a
later run whose ``fingerprint`` is the same — dataset bytes, methods, settings, models, code — skips
those documents. Any other fingerprint starts over, and says what changed. ``finish`` moves the
artifacts into place and removes the work folder. Timings stay per document: a resumed run warms up
again before it times anything, so only the part of a method made once per run (the empty gist) is
charged to the first document of each run.

    journal = Journal(Path("data/eval/.niah_test_en.partial"), run_fingerprint(dataset_file, ...))
    todo = [document for document in documents if document["id"] not in journal.finished]
    evaluate_documents(methods, reader, todo, 12, score_niah, on_document=journal.add)
    rows = journal.rows_in_order(documents)
    journal.finish(Path("data/gist_kv/niah_test_en"))
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from gistkv.hardware import host_label
from gistkv.imports import ROOT, script_files
from gistkv.io import read_json, sha256_file, write_json, write_text

log = logging.getLogger(__name__)
ROWS = "rows.jsonl"
FINGERPRINT = "fingerprint.json"
ARTIFACTS = "artifacts"
END = "_document_end"      # the line after a document's last row


def folder_sha256(folder: str | Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256); empty when it does not exist."""
    folder = Path(folder)
    return {str(path.relative_to(folder)): sha256_file(path)
            for path in sorted(folder.rglob("*")) if path.is_file()}


def code_sha256(script: Path) -> dict[str, str]:
    """The stage script and every package file it runs (what its DVC deps list): a change starts over."""
    return {Path(script).name: sha256_file(script)} | {
        name: sha256_file(ROOT / name) for name in sorted(script_files(script))}


def run_fingerprint(dataset_file: Path, methods: list[str], settings: dict, model_dirs: list[Path],
                    script: Path) -> dict[str, object]:
    """What a run's rows depend on, part by part (so that a mismatch can be named)."""
    return {"dataset": sha256_file(dataset_file), "methods": list(methods), "settings": settings,
            "models": {str(folder): folder_sha256(folder) for folder in model_dirs},
            "code": code_sha256(script)}


class Journal:
    def __init__(self, work: str | Path, fingerprint: dict):
        self.work = Path(work)
        self.artifacts = self.work / ARTIFACTS
        kept = self.work / FINGERPRINT
        if self.work.exists():
            old = read_json(kept) if kept.exists() else {}
            changed = [part for part in fingerprint if old.get(part) != fingerprint[part]]
            if changed:
                log.warning("%s: starting over (%s changed since its run)", self.work, ", ".join(changed))
                shutil.rmtree(self.work)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self._hosts: set[str] = set()
        if not kept.exists():
            write_json(kept, fingerprint)
        self._rows = self._read_finished()
        self.finished = {row["id"] for row in self._rows}
        if self.finished:
            log.warning("%s: resuming after %d finished documents", self.work, len(self.finished))

    def _read_finished(self) -> list[dict]:
        """Rows of whole documents: a line cut short by a kill, and the rest of its document, are dropped."""
        path = self.work / ROWS
        if not path.exists():
            return []
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                break
        ended = {line["id"] for line in lines if line.get(END)}
        kept = [line for line in lines if line["id"] in ended]
        self._hosts = {line.get("host", "") for line in kept if line.get(END)}
        write_text(path, "".join(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n" for line in kept))
        return [line for line in kept if not line.get(END)]

    def add(self, document_rows: list[dict]) -> None:
        """One finished document's rows, then its end marker, on disk before the next document starts."""
        if not document_rows:
            return
        doc_id = document_rows[0]["id"]
        with (self.work / ROWS).open("a", encoding="utf-8", newline="\n") as out:
            out.writelines(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in document_rows)
            out.write(json.dumps({"id": doc_id, END: True, "host": host_label()}, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self._rows += document_rows
        self.finished.add(doc_id)
        self._hosts.add(host_label())

    def hosts(self) -> list[str]:
        """The machines the finished documents were timed on (more than one when a run resumed elsewhere)."""
        return sorted(self._hosts)

    def rows_in_order(self, documents: list[dict]) -> list[dict]:
        """All rows, documents in ``documents``' order (a document's own rows as they were made)."""
        position = {document["id"]: index for index, document in enumerate(documents)}
        return sorted(self._rows, key=lambda row: position[row["id"]])

    def finish(self, artifacts_dest: str | Path) -> None:
        """Swap the artifacts in for ``artifacts_dest`` and drop the work folder."""
        dest = Path(artifacts_dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(self.artifacts, dest)
        shutil.rmtree(self.work)

