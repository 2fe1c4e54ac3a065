"""What one method costs alone: a fresh process per method, holding only the model it needs, on a few test
documents per length; end-to-end seconds on one clock and the process's peak memory.

The accuracy evaluation shares one read of each document among all methods (one process, every model
loaded); memory can only be told apart per method in a process of its own. Here each method reads the
document with its own weights (adapter off for the tuned and gist readers: the same numbers as the base
model's read), so nothing it does not need is in memory.

    rows = measure_method("gist", Path("models/base"), Path("models/gist"), Path("models/lora"), documents, settings)
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gistkv.errors import GistkvError
from gistkv.params import require


@dataclass
class CostParams:
    langs: list[str]                 # test documents of these languages ...
    documents_per_length: int        # ... this many at each context length (the first ones)

    def validate(self, where: str) -> None:
        require(bool(self.langs) and self.documents_per_length >= 1, where,
                "needs langs and documents_per_length >= 1.")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def reader_of(method: str) -> str:
    return "gist" if method.startswith("gist") else method.partition("/")[2]


def _measure(method: str, base_dir: str, gist_dir: str, tuned_dir: str, documents: list[dict], settings, queue) -> None:
    """In the child: run the method, or report its error as one line (the parent raises it)."""
    try:
        _measure_rows(method, base_dir, gist_dir, tuned_dir, documents, settings, queue)
    except Exception as err:        # noqa: BLE001 - any failure becomes the stage's one-line error
        queue.put({"error": f"{type(err).__name__}: {err}" if not isinstance(err, GistkvError) else str(err)})


def _measure_rows(method: str, base_dir: str, gist_dir: str, tuned_dir: str, documents: list[dict], settings,
                  queue) -> None:
    """Load only this method's reader, evaluate the documents, report rows and peak memory."""
    import torch

    from gistkv.core.compressor import load_compressor
    from gistkv.core.presence import load_embedder
    from gistkv.evaluation.evaluate import evaluate_documents, score_niah
    from gistkv.evaluation.registry import build_methods
    from gistkv.evaluation.readers import base_reader
    from gistkv.evaluation.retrieval import Retriever, load_embedding_function

    torch.set_num_threads(settings.torch_threads)
    start = time.perf_counter()
    name = reader_of(method)
    reader = {"base": lambda: base_reader(Path(base_dir)), "tuned": lambda: load_compressor(tuned_dir, gist_mask=False),
              "gist": lambda: load_compressor(gist_dir)}[name]()
    load_s = time.perf_counter() - start
    retriever, gate = None, None
    if method.startswith("rag"):
        retriever = Retriever(load_embedding_function(settings.rag.embedder, Path(base_dir).parent / "embedder",
                                                      settings.torch_threads), reader.tokenizer)
    if method == "gist/gated":      # its embedder's loading counts as the method's model loading
        gate = (load_embedder(Path(base_dir).parent / "embedder", settings.torch_threads), settings.gate.min_similarity)
        load_s = time.perf_counter() - start
    [runner] = build_methods([method], {name: reader}, retriever, settings.rag.budgets, gate=gate)
    rows = evaluate_documents([runner], reader, documents, settings.max_new_tokens, score_niah)
    queue.put({"rows": rows, "load_s": load_s, "peak_rss_mb": peak_rss_mb()})


def measure_method(method: str, base_dir: Path, gist_dir: Path, tuned_dir: Path, documents: list[dict], settings) -> dict:
    """Run one method in a fresh (spawned) process; its rows, model-loading seconds and peak memory."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_measure, args=(method, str(base_dir), str(gist_dir), str(tuned_dir), documents,
                                                   settings, queue))
    child.start()
    while True:         # a child killed before it reports (the OOM killer) must not hang the stage
        try:
            result = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not child.is_alive() and queue.empty():
                raise GistkvError(f"measure_costs: {method}'s process was killed (exit code {child.exitcode}) before "
                                  "it reported; was it out of memory?") from None
    child.join()
    if "error" in result:
        raise GistkvError(f"measure_costs: {method}: {result['error']}")
    return result


def cost_summary(method: str, result: dict) -> dict:
    """Per context length: first answer (one-off + first question), per question over the document's questions,
    and the process's peak memory and model-loading time (per method, not per length)."""
    from gistkv.evaluation.summaries import by, median

    rows = result["rows"]
    summary = {"method": method, "reader": reader_of(method), "peak_rss_mb": round(result["peak_rss_mb"], 1),
               "load_s": round(result["load_s"], 3), "n_documents": len({row["id"] for row in rows})}
    for length, subset in by(rows, "target_tokens").items():
        documents = by(subset, "id").values()
        summary[f"first_answer_s_tokens_{length}"] = median(q[0]["one_off_s"] + q[0]["answer_s"] for q in documents)
        summary[f"per_question_s_tokens_{length}"] = median(
            (q[0]["one_off_s"] + sum(row["answer_s"] for row in q)) / len(q) for q in documents)
        summary[f"answer_kv_bytes_tokens_{length}"] = median(row["answer_kv_bytes"] for row in subset)
    return summary
