"""LongBench v1: download the official ``data.zip``, verify it, keep the chosen tasks as JSONL.

Streaming download with a progress bar; an interrupted download resumes with an HTTP Range
request (or restarts cleanly when the server ignores it). Tasks are read member by member
from the archive (never ``extractall``), member names are checked against path traversal, and
every output is written to a temp file and renamed.

Offline (no hub access), ``required: false`` writes ``status.json`` = unavailable + reason and
later stages report LongBench as "not evaluated (offline)"; ``required: true`` fails.

    python stages/download_longbench.py
    python stages/download_longbench.py --params p.yaml   # with download_longbench.source: /path/to/data.zip
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gistkv.errors import GistkvError
from gistkv.io import atomic_path, sha256_file, write_json, write_jsonl

log = logging.getLogger(__name__)
FIELDS = ("input", "context", "answers", "length", "dataset", "language", "all_classes", "_id")


@dataclass
class LongBenchParams:
    source: str          # URL of data.zip, or a local path to it
    sha256: str          # expected sha256 of data.zip ("" = do not check, record it)
    tasks: list[str]
    max_samples: int
    required: bool
    timeout_s: int


def download(url: str, target: Path, timeout_s: int, progress=None) -> Path:
    """Stream ``url`` to ``target``, resuming a ``.part`` file left by an interrupted run."""
    partial = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        resumed = have and response.status == 206
        total = int(response.headers.get("Content-Length") or 0) + (have if resumed else 0)
        with open(partial, "ab" if resumed else "wb") as out:
            done = have if resumed else 0
            while block := response.read(1 << 20):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    partial.replace(target)
    return target


def safe_member(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and "\\" not in name


def extract_tasks(archive_path: Path, tasks: list[str], max_samples: int, out_dir: Path) -> dict[str, int]:
    counts = {}
    try:
        with zipfile.ZipFile(archive_path) as archive:
            names = archive.namelist()
            unsafe = [name for name in names if not safe_member(name)]
            if unsafe:
                raise GistkvError(f"{archive_path}: unsafe member path {unsafe[0]!r}; refusing to read this archive.")
            by_task = {PurePosixPath(name).stem: name for name in names if name.endswith(".jsonl")}
            missing = [task for task in tasks if task not in by_task]
            if missing:
                raise GistkvError(f"download_longbench.tasks: {missing[0]!r} not in {archive_path} "
                                  f"(has: {', '.join(sorted(by_task)[:12])}).")
            for task in tasks:
                records = []
                with archive.open(by_task[task]) as member:
                    for number, line in enumerate(member, 1):
                        if len(records) >= max_samples:
                            break
                        try:
                            record = json.loads(line)
                        except json.JSONDecodeError:
                            raise GistkvError(f"{archive_path}:{by_task[task]}:{number}: not a JSON line.") from None
                        records.append({field: record.get(field) for field in FIELDS})
                counts[task] = write_jsonl(out_dir / f"{task}.jsonl", records)
    except zipfile.BadZipFile:
        raise GistkvError(f"{archive_path}: corrupt or partial zip; delete it and re-run.") from None
    return counts


def fetch_longbench(params: LongBenchParams, out_dir: Path, download_dir: Path, progress=None) -> dict:
    """Returns the status written to ``out_dir/status.json``."""
    local = Path(params.source)
    try:
        if local.exists():
            archive_path = local
        else:
            archive_path = download_dir / "longbench_data.zip"
            if not archive_path.exists():
                download(params.source, archive_path, params.timeout_s, progress)
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError, ValueError) as err:
        reason = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
        if params.required:
            raise GistkvError(f"download_longbench.source: cannot download {params.source} ({reason}); "
                              "point download_longbench.source at a local data.zip or go online.") from None
        log.warning("LongBench unavailable (%s); writing an 'unavailable' status instead of data.", reason)
        status = {"status": "unavailable", "reason": reason, "source": params.source}
        write_json(out_dir / "status.json", status)
        return status
    actual = sha256_file(archive_path)
    if params.sha256 and actual != params.sha256:
        raise GistkvError(f"{archive_path}: sha256 {actual[:12]}… does not match download_longbench.sha256 "
                          f"{params.sha256[:12]}…; delete it and re-run.")
    counts = extract_tasks(archive_path, params.tasks, params.max_samples, out_dir)
    status = {"status": "available", "sha256": actual, "tasks": list(params.tasks), "counts": counts,
              "source": params.source}
    write_json(out_dir / "status.json", status)
    return status
