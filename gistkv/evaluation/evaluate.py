"""Evaluate methods on documents: one row per (document, question, method), with end-to-end times.

Each document is read once by the base weights for every method that reads it whole; each such
method is charged that read's seconds (``one_off_s``: read + its own compressing / indexing /
storing), and every question's ``answer_s`` is measured around the method's whole answer
(retrieval, reading the retrieved text, prefill and decoding). So the end-to-end cost of one method
on one document is ``one_off_s + sum(answer_s)`` on one clock for all methods. An untimed warm-up on a
short piece of the first document comes first.

    rows = evaluate_documents(methods, readers["base"], documents, max_new_tokens=12, score=score_niah)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from gistkv.core.prompt import encode
from gistkv.evaluation.methods import SharedRead, context_text
from gistkv.evaluation.scoring import ruler_string_match, score_number
from gistkv.params import require

WARMUP_TOKENS = 128


@dataclass
class RagParams:
    embedder: str                # use (multilingual USE v3) | minilm (English only)
    budgets: list[dict]          # [{chunk_tokens, top_k}]: the reader reads chunk_tokens x top_k retrieved tokens

    def validate(self, where: str) -> None:
        from gistkv.evaluation.retrieval import EMBEDDERS    # here, not at the top: training's held-out checks
                                                              # use this module and need no chromadb
        require(self.embedder in EMBEDDERS, f"{where}.embedder", f"must be one of {', '.join(EMBEDDERS)}.")
        require(bool(self.budgets), f"{where}.budgets", "must list at least one {chunk_tokens, top_k}.")
        for index, budget in enumerate(self.budgets):
            require(set(budget) == {"chunk_tokens", "top_k"} and all(isinstance(v, int) and v > 0 for v in budget.values()),
                    f"{where}.budgets[{index}]", "must be {chunk_tokens: int > 0, top_k: int > 0}.")
        totals = [budget["chunk_tokens"] * budget["top_k"] for budget in self.budgets]
        require(len(set(totals)) == len(totals), f"{where}.budgets", "must differ in chunk_tokens x top_k (a method's name).")


@dataclass
class GateParams:
    min_similarity: float        # gist/gated and `gistkv ask`: below this best-passage cosine, decline (chosen on dev)

    def validate(self, where: str) -> None:
        require(-1.0 <= self.min_similarity <= 1.0, f"{where}.min_similarity", "must be a cosine, within [-1, 1].")


@dataclass
class EvaluateParams:
    max_new_tokens: int          # NIAH answers: a number of up to 8 digits, or the decline sentence
    readers: list[str]           # who reads for the full-context and retrieval baselines: base, tuned
    rag: RagParams
    gate: GateParams
    ruler_methods: list[str]     # the methods run on RULER (its answers are long, decoding is the CPU's cost)
    torch_threads: int

    def validate(self, where: str) -> None:
        require(self.max_new_tokens > 0, f"{where}.max_new_tokens", "must be positive.")
        require(self.torch_threads > 0, f"{where}.torch_threads", "must be positive.")
        require(bool(self.readers) and set(self.readers) <= {"base", "tuned"}, f"{where}.readers",
                "must list base and/or tuned.")


def score_niah(prediction: str, question: dict) -> dict:
    return score_number(prediction, question["answer"] if question["kind"] == "present" else None)


def score_ruler(prediction: str, question: dict) -> dict:
    score = ruler_string_match(prediction, question["answers"], question["metric"])
    return {"score": score, "correct": score == 1.0}


def per_token_kv_bytes(model) -> int:
    config = model.config
    kv_heads = getattr(config, "num_key_value_heads", config.num_attention_heads)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    element = next(model.parameters()).element_size() if next(model.parameters()).is_floating_point() else 2
    return 2 * config.num_hidden_layers * kv_heads * head_dim * element


def warm_up(methods, base_reader, document: dict, max_new_tokens: int, reset: bool = True) -> None:
    """Untimed: first-call allocations and lazy inits of every method, on a short piece of a document."""
    import tempfile
    from pathlib import Path

    short = dict(document, id=f"{document['id']}-warmup", prefix="",
                 context=base_reader.tokenizer.decode(encode(base_reader.tokenizer, document["context"])[:WARMUP_TOKENS]))
    stored = [method for method in methods if hasattr(method, "artifact_dir")]
    kept = [method.artifact_dir for method in stored]
    with tempfile.TemporaryDirectory(prefix="gistkv-warmup-") as scratch:
        for method in stored:       # the warm-up's artifacts are not the evaluation's
            method.artifact_dir = Path(scratch)
        try:
            run_document(methods, base_reader, short, max_new_tokens, lambda prediction, question: {})
        finally:
            for method, folder in zip(stored, kept):
                method.artifact_dir = folder
    for method in methods:          # what a method makes once is charged to the evaluation's first document
        if reset and hasattr(method, "reset"):
            method.reset()


def run_document(methods, base_reader, document: dict, max_new_tokens: int, score) -> list[dict]:
    context_ids = base_reader.layout.document_ids(context_text(document))
    consumers = sum(method.uses_shared_read for method in methods)
    shared = SharedRead(base_reader, context_ids, consumers) if consumers else None
    kv_per_token = per_token_kv_bytes(base_reader.model)
    rows = []
    for method in methods:
        copies_before = shared.copy_s if shared else 0.0
        start = time.perf_counter()
        prepared = method.prepare(document, context_ids, shared)
        copies = (shared.copy_s if shared else 0.0) - copies_before      # sharing's own cost, nobody's
        one_off_s = time.perf_counter() - start - copies + (shared.seconds if method.uses_shared_read else 0.0)
        reader = getattr(method, "reader", None) or method.compressor
        for index, question in enumerate(document["questions"]):
            start = time.perf_counter()
            decoded = method.answer(prepared, question, question.get("max_new_tokens", max_new_tokens))
            answer_s = time.perf_counter() - start
            prediction = reader.tokenizer.decode(decoded.token_ids, skip_special_tokens=True)
            rows.append({
                "id": document["id"], "question_index": index, "method": method.name, "reader": method.reader_name,
                "prediction": prediction, **score(prediction, question),
                "min_token_prob": round(decoded.min_token_prob, 5), "context_tokens": len(context_ids),
                "budget_tokens": prepared.budget_tokens, "answer_kv_bytes": prepared.budget_tokens * kv_per_token,
                "full_kv_bytes": len(context_ids) * kv_per_token,
                "one_off_s": round(one_off_s, 5), "answer_s": round(answer_s, 5), "ttft_s": round(decoded.ttft_s, 5),
                **{key: question[key] for key in ("kind", "family", "name", "answer", "depth", "depth_bin", "task",
                                                  "metric") if key in question},
                **{key: document[key] for key in ("lang", "split", "group", "haystack", "target_tokens", "task")
                   if key in document},
                **prepared.extra, **decoded.extra})
        if hasattr(method, "finish"):
            method.finish(prepared)
    return rows


def evaluate_documents(methods, base_reader, documents: list[dict], max_new_tokens: int, score,
                       progress=None, warm_up_first: bool = True, on_document=None,
                       charge_first_document: bool = True) -> list[dict]:
    """Rows for every (document, question, method), documents in order; ``on_document(document, rows)``
    gets each document's rows as soon as they exist (``gistkv.evaluation.journal.Journal.add``);
    ``charge_first_document``: False when an earlier run of the same evaluation already charged its
    first document for what a method makes once."""
    if documents and warm_up_first:
        warm_up(methods, base_reader, documents[0], max_new_tokens, reset=charge_first_document)
    rows = []
    with torch.no_grad():
        for document in documents:
            document_rows = run_document(methods, base_reader, document, max_new_tokens, score)
            rows += document_rows
            if on_document:
                on_document(document, document_rows)
            if progress:
                progress()
    return rows
