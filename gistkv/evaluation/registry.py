"""The evaluation methods by name (``gistkv.evaluation.methods`` lists what each reads).

    names = method_names(["base", "tuned"], [{"chunk_tokens": 64, "top_k": 2}], gist=True)
    methods = build_methods(names, readers, retriever, budgets, gate=(load_embedder(), 0.36))
"""

from __future__ import annotations

from pathlib import Path

from gistkv.errors import GistkvError
from gistkv.evaluation.gated import GistGated
from gistkv.evaluation.methods import FullContext, Gist, GistEmpty, Retrieval


def method_names(readers: list[str], rag_budgets: list[dict], gist: bool) -> list[str]:
    names = [f"full/{reader}" for reader in readers]
    names += [f"rag{budget['chunk_tokens'] * budget['top_k']}/{reader}" for budget in rag_budgets for reader in readers]
    return names + (["gist", "gist/gated", "gist/empty"] if gist else [])


def build_methods(names: list[str], readers: dict, retriever, rag_budgets: list[dict],
                  artifact_dir: Path | None = None, gate=None) -> list:
    """Methods by name; ``readers`` maps base / tuned / gist to loaded compressors (``gistkv.evaluation.readers``);
    ``gate``: (embedding function, min_similarity) for gist/gated."""
    budgets = {budget["chunk_tokens"] * budget["top_k"]: budget for budget in rag_budgets}
    methods = []
    for name in names:
        kind, _, reader_name = name.partition("/")
        if kind == "gist":
            if reader_name == "gated" and gate is None:
                raise GistkvError("method gist/gated needs the gate (an embedding function and evaluate.gate.min_similarity).")
            methods.append(GistEmpty(readers["gist"]) if reader_name == "empty" else
                           GistGated(readers["gist"], *gate, artifact_dir) if reader_name == "gated" else
                           Gist(readers["gist"], artifact_dir))
        elif kind == "full":
            methods.append(FullContext(readers[reader_name], reader_name))
        elif kind.startswith("rag") and kind[3:].isdigit() and int(kind[3:]) in budgets:
            budget = budgets[int(kind[3:])]
            methods.append(Retrieval(readers[reader_name], reader_name, retriever, budget["chunk_tokens"],
                                     budget["top_k"]))
        else:
            raise GistkvError(f"method {name!r}: unknown (known: full/<reader>, rag<budget>/<reader>, gist, gist/gated, gist/empty).")
    return methods
