"""Which files of the package a script runs: its gistkv imports, followed transitively (any depth,
function-level imports included), plus the data files those modules read beside them.

It is what a stage's DVC deps must list (``tests/test_dvc_deps.py``) and what a resumed evaluation
checks has not changed (``gistkv.evaluation.journal``).

    python -m gistkv.imports stages/evaluate.py      # prints the repository-relative files
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]      # the folder that holds the gistkv package
DATA_FILES = {"gistkv/data/needles.py": ["gistkv/data/niah_families.yaml"]}


def module_file(module: str) -> str:
    return module.replace(".", "/") + ".py"


def gistkv_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gistkv":
            # ``from gistkv.training import plateau`` imports a module; ``from gistkv.io import x`` a name
            modules = {f"{node.module}.{alias.name}" for alias in node.names}
            found |= {name for name in modules if (ROOT / module_file(name)).exists()} or {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "gistkv"}
    return found


def script_files(script: str | Path) -> set[str]:
    """The package files (relative to ROOT) that ``script`` runs."""
    files, todo = set(), [Path(script)]
    while todo:
        for module in gistkv_imports(todo.pop()):
            name = module_file(module)
            if name not in files and (ROOT / name).exists():
                files.add(name)
                files |= set(DATA_FILES.get(name, []))
                todo.append(ROOT / name)
    return files


if __name__ == "__main__":
    import sys

    for script in sys.argv[1:]:
        print(script, sorted(script_files(script)))
