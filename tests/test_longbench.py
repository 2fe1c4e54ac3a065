"""LongBench download against a local HTTP server on 127.0.0.1 serving a fixture zip."""

import functools
import hashlib
import http.server
import json
import threading
import zipfile

import pytest

from gistkv.data.longbench import LongBenchParams, fetch_longbench
from gistkv.errors import GistkvError

RECORD = {"input": "Who?", "context": "Long text. " * 10, "answers": ["Alice"], "length": 20, "dataset": "qasper",
          "language": "en", "all_classes": None, "_id": "abc", "extra": "dropped"}


def fixture_zip(path, members=None):
    members = members or {"data/qasper.jsonl": [RECORD] * 5, "data/multifieldqa_zh.jsonl": [dict(RECORD, language="zh")] * 3}
    with zipfile.ZipFile(path, "w") as archive:
        for name, records in members.items():
            archive.writestr(name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    fixture_zip(root / "data.zip")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def params(source, **change) -> LongBenchParams:
    values = dict(source=source, sha256="", tasks=["qasper", "multifieldqa_zh"], max_samples=2, required=False, timeout_s=5)
    values.update(change)
    return LongBenchParams(**values)


def test_download_verify_extract(server, tmp_path):
    url, root = server
    digest = hashlib.sha256((root / "data.zip").read_bytes()).hexdigest()
    status = fetch_longbench(params(f"{url}/data.zip", sha256=digest), tmp_path / "out", tmp_path / "dl")
    assert status["status"] == "available" and status["counts"] == {"qasper": 2, "multifieldqa_zh": 2}
    rows = [json.loads(line) for line in (tmp_path / "out/qasper.jsonl").read_text().splitlines()]
    assert rows[0]["answers"] == ["Alice"] and "extra" not in rows[0] and set(rows[0]) >= {"_id", "all_classes"}


def test_offline_writes_status_or_fails_when_required(tmp_path):
    dead = "http://127.0.0.1:9/data.zip"     # discard port: connection refused at once
    status = fetch_longbench(params(dead), tmp_path / "out", tmp_path / "dl")
    assert status["status"] == "unavailable" and json.loads((tmp_path / "out/status.json").read_text())["reason"]
    with pytest.raises(GistkvError, match="download_longbench.source: cannot download"):
        fetch_longbench(params(dead, required=True), tmp_path / "out2", tmp_path / "dl")


def test_checksum_mismatch_and_corrupt_zip(server, tmp_path):
    url, _ = server
    with pytest.raises(GistkvError, match="does not match download_longbench.sha256"):
        fetch_longbench(params(f"{url}/data.zip", sha256="0" * 64), tmp_path / "out", tmp_path / "dl")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(GistkvError, match="corrupt or partial zip"):
        fetch_longbench(params(str(broken)), tmp_path / "out", tmp_path / "dl")


def test_path_traversal_and_missing_task_are_refused(tmp_path):
    evil = fixture_zip(tmp_path / "evil.zip", {"../../etc/qasper.jsonl": [RECORD]})
    with pytest.raises(GistkvError, match="unsafe member path"):
        fetch_longbench(params(str(evil)), tmp_path / "out", tmp_path / "dl")
    partial = fixture_zip(tmp_path / "partial.zip", {"data/qasper.jsonl": [RECORD]})
    with pytest.raises(GistkvError, match="'multifieldqa_zh' not in"):
        fetch_longbench(params(str(partial)), tmp_path / "out", tmp_path / "dl")


def test_interrupted_download_resumes(server, tmp_path):
    url, root = server
    data = (root / "data.zip").read_bytes()
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl/longbench_data.zip.part").write_bytes(data[:100])
    fetch_longbench(params(f"{url}/data.zip"), tmp_path / "out", tmp_path / "dl")
    assert (tmp_path / "dl/longbench_data.zip").read_bytes() == data
