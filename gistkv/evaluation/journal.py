"""A resumable evaluation: finished documents are kept on disk, so a killed run goes on where it stopped.

Evaluating a 200-document test split takes hours on a 2-core CPU, and a session (or a preempted GPU
job) can end at any minute. ``Journal`` appends each finished document's rows to ``rows.jsonl`` in
its work folder (flushed to disk, then an end line naming the artifacts the document made), while the
artifacts (gist KV files) go to a folder beside their destination. A later run whose ``fingerprint``
is the same — dataset bytes, methods, settings, models, code, packages, device — skips the finished
documents whose artifacts are all there. Any other fingerprint starts over and says what changed.
``finish`` swaps the artifacts in for their destination and removes the work folder; a kill at any
point of it leaves a state a rerun completes correctly.

Timings stay per document: a resumed run warms up before it times anything, and what a method makes
once per run (the empty gist) is charged to the first document of the first run only
(``charged_once``).

    journal = Journal(Path("data/eval/gist/.niah_test_en.partial"), Path("data/gist_kv/niah_test_en"), fingerprint)
    todo = [document for document in documents if document["id"] not in journal.finished]
    evaluate_documents(methods, reader, todo, 12, score_niah, on_document=journal.add,
                       charge_first_document=not journal.charged_once)
    rows = journal.rows_in_order(documents)
    journal.finish()
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from gistkv.hardware import host_label
from gistkv.imports import ROOT, script_files
from gistkv.io import read_json, sha256_file, write_json, write_text

log = logging.getLogger(__name__)
ROWS = "rows.jsonl"
FINGERPRINT = "fingerprint.json"
END = "_document_end"      # the line after a document's last row
PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "chromadb", "safetensors")


def folder_sha256(folder: str | Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256); empty when it does not exist."""
    folder = Path(folder)
    return {str(path.relative_to(folder)): sha256_file(path)
            for path in sorted(folder.rglob("*")) if path.is_file()}


def code_sha256(script: Path) -> dict[str, str]:
    """The stage script and every package file it runs (what its DVC deps list): a change starts over."""
    return {Path(script).name: sha256_file(script)} | {
        name: sha256_file(ROOT / name) for name in sorted(script_files(script))}


def package_versions() -> dict[str, str]:
    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"
    return {name: installed(name) for name in PACKAGES}


def run_fingerprint(dataset_file: Path, methods: list[str], settings: dict, model_dirs: list[Path],
                    script: Path, device: str) -> dict[str, object]:
    """What a run's rows depend on, part by part (so that a mismatch can be named)."""
    return {"dataset": sha256_file(dataset_file), "methods": list(methods), "settings": settings,
            "models": {str(folder): folder_sha256(folder) for folder in model_dirs},
            "code": code_sha256(script), "packages": package_versions(), "device": device}


class Journal:
    def __init__(self, work: str | Path, artifacts_dest: str | Path | None, fingerprint: dict):
        """``artifacts_dest``: where the run's stored files go at the end (None: its methods store none)."""
        self.work = Path(work)
        self.dest = Path(artifacts_dest or self.work / "no-artifacts")
        # Beside the destination: finish() renames it in place (same file system).
        self.artifacts = self.dest.parent / f".{self.dest.name}.partial"
        self.aside = self.dest.parent / f".{self.dest.name}.old"
        self.stores = artifacts_dest is not None
        kept = self.work / FINGERPRINT
        if self.work.exists():
            old = read_json(kept) if kept.exists() else {}
            if changed := [part for part in fingerprint if old.get(part) != fingerprint[part]]:
                log.warning("%s: starting over (%s changed since its run)", self.work, ", ".join(changed))
                shutil.rmtree(self.work)
        if not self.work.exists() and self.artifacts.exists():
            shutil.rmtree(self.artifacts)
        self.work.mkdir(parents=True, exist_ok=True)
        if self.stores:
            self.artifacts.mkdir(parents=True, exist_ok=True)
        if not kept.exists():
            write_json(kept, fingerprint)
        self._rows, self._hosts = self._read_finished()
        self.finished = {row["id"] for row in self._rows}
        self.charged_once = bool(self.finished)     # the first document of an earlier run paid the once-per-run costs
        self._known = self._stored()
        if self.finished:
            log.warning("%s: resuming after %d finished documents", self.work, len(self.finished))

    def _read_finished(self) -> tuple[list[dict], set[str]]:
        """Rows of whole documents with their artifacts present (a line cut short by a kill drops the rest)."""
        path = self.work / ROWS
        if not path.exists():
            return [], set()
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                break
        ends = {line["id"]: line for line in lines if line.get(END)
                if all((self.artifacts / name).exists() for name in line.get("artifacts", []))}
        kept = [line for line in lines if line["id"] in ends and (not line.get(END) or ends[line["id"]] is line)]
        write_text(path, "".join(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n" for line in kept))
        return [line for line in kept if not line.get(END)], {end.get("host", "") for end in ends.values()}

    def add(self, document: dict, document_rows: list[dict]) -> None:
        """One finished document's rows, then its end line, on disk before the next document starts."""
        if document["id"] in self.finished:
            raise ValueError(f"document {document['id']!r} twice in one evaluation")
        now = self._stored()
        end = {"id": document["id"], END: True, "host": host_label(), "artifacts": sorted(now - self._known)}
        with (self.work / ROWS).open("a", encoding="utf-8", newline="\n") as out:
            out.writelines(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in document_rows)
            out.write(json.dumps(end, ensure_ascii=False, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self._rows += document_rows
        self.finished.add(document["id"])
        self._hosts.add(end["host"])
        self._known = now

    def _stored(self) -> set[str]:
        return set(os.listdir(self.artifacts)) if self.stores else set()

    def hosts(self) -> list[str]:
        """The machines the finished documents were timed on (more than one when a run resumed elsewhere)."""
        return sorted(self._hosts)

    def rows_in_order(self, documents: list[dict]) -> list[dict]:
        """All rows, documents in ``documents``' order (a document's own rows as they were made)."""
        position = {document["id"]: index for index, document in enumerate(documents)}
        return sorted(self._rows, key=lambda row: position[row["id"]])

    def finish(self) -> None:
        """Swap the artifacts in for the destination, then drop the journal. Killed between the two, a rerun
        finds its documents' artifacts gone and evaluates them again."""
        if self.stores:
            if self.aside.exists():
                shutil.rmtree(self.aside)
            if self.dest.exists():
                os.replace(self.dest, self.aside)
            os.replace(self.artifacts, self.dest)
        shutil.rmtree(self.work)
        if self.aside.exists():
            shutil.rmtree(self.aside)
