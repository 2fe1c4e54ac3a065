"""Where installed packages and wheels read for their data live.

    >>> from gistkv.packages import package_dir
    >>> package_dir("gistkv").name
    'gistkv'
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from gistkv.errors import GistkvError


def package_dir(name: str) -> Path:
    # find_spec does not import the package (konlpy's import would start a JVM).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise GistkvError(f"haystack: package '{name}' is not installed (pip install {name}).")
    return Path(list(spec.submodule_search_locations)[0])


def cache_dir() -> Path:
    """Where wheels read for their data are kept: ``$GISTKV_CACHE``, else ``~/.cache/gistkv``."""
    return Path(os.environ.get("GISTKV_CACHE") or Path.home() / ".cache" / "gistkv")
