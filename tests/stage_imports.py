"""Which files of the package a stage script runs: its gistkv imports, followed transitively (any depth,
function-level imports included), plus the data files those modules read beside them."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).parent.parent
DATA_FILES = {"gistkv/data/needles.py": ["gistkv/data/niah_families.yaml"]}


def gistkv_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gistkv":
            # ``from gistkv.training import plateau`` imports a module; ``from gistkv.io import x`` a name
            modules = {f"{node.module}.{alias.name}" for alias in node.names}
            found |= {name for name in modules if (REPO / module_file(name)).exists()} or {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "gistkv"}
    return found


def module_file(module: str) -> str:
    return module.replace(".", "/") + ".py"


def stage_files(script: str) -> set[str]:
    files, todo = set(), [REPO / script]
    while todo:
        for module in gistkv_imports(todo.pop()):
            name = module_file(module)
            if name not in files and (REPO / name).exists():
                files.add(name)
                files |= set(DATA_FILES.get(name, []))
                todo.append(REPO / name)
    return files


if __name__ == "__main__":
    import sys

    for script in sys.argv[1:]:
        print(script, sorted(stage_files(script)))
