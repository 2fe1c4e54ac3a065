"""The package files a stage script runs, for the DVC-deps test: ``gistkv.imports`` on repository paths."""

from __future__ import annotations

from pathlib import Path

from gistkv.imports import script_files

REPO = Path(__file__).parent.parent


def stage_files(script: str) -> set[str]:
    return script_files(REPO / script)
