"""Evaluate one method on one dataset: per-sample predictions and a flat metrics dict.

Timings are honest: ``warmup_samples`` untimed answers first, then batch 1, medians; the
one-off costs (compressing, indexing) are kept apart from answering. Peak memory on CPU is
the process's peak RSS (run one method per process, as the DVC matrix does) plus the KV
bytes the answer attends to; on CUDA, max allocated.

    from gistkv.evaluate import evaluate_method
    predictions, metrics = evaluate_method(method, records, max_new_tokens=8, warmup_samples=1)
"""

from __future__ import annotations

import resource
import statistics
import sys
from dataclasses import dataclass

import torch

from gistkv.params import require
from gistkv.scoring import score_passkey, wilson_interval


@dataclass
class EvaluateParams:
    max_new_tokens: int
    warmup_samples: int
    rag_chunk_tokens: int
    rag_chunk_overlap: int
    rag_top_k: int
    embedder_package: str
    torch_threads: int

    def validate(self, where: str) -> None:
        require(self.max_new_tokens > 0, f"{where}.max_new_tokens", "must be positive.")
        require(self.rag_top_k > 0, f"{where}.rag_top_k", "must be positive.")
        require(self.torch_threads > 0, f"{where}.torch_threads", "must be positive.")


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def per_token_kv_bytes(model) -> int:
    config = model.config
    kv_heads = getattr(config, "num_key_value_heads", config.num_attention_heads)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    element = model.get_input_embeddings().weight.element_size()
    return 2 * config.num_hidden_layers * kv_heads * head_dim * element


def median(values: list[float]) -> float:
    values = [value for value in values if value == value]
    return round(statistics.median(values), 6) if values else float("nan")


def evaluate_method(method, records: list[dict], max_new_tokens: int, warmup_samples: int,
                    progress=None) -> tuple[list[dict], dict]:
    tokenizer = method.tokenizer
    model = getattr(method, "model", None) or method.compressor.model
    for record in records[:warmup_samples]:          # untimed: first-call allocations, lazy inits
        method.prepare(record)
        method.answer(record, max_new_tokens)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    predictions = []
    for record in records:
        prepared = method.prepare(record)
        decoded = method.answer(record, max_new_tokens)
        text = tokenizer.decode(decoded.token_ids, skip_special_tokens=True)
        score = score_passkey(text, record["answer"])
        predictions.append({
            "id": record["id"], "lang": record["lang"], "variant": record["variant"], "haystack": record["haystack"],
            "target_tokens": record["target_tokens"], "context_tokens": record["context_tokens"],
            "depth": record["depth"], "depth_bin": record["depth_bin"], "answer": record["answer"],
            "prediction": text, **score, "ttft_s": round(decoded.ttft_s, 5),
            "decode_tokens_per_s": round(decoded.decode_tokens_per_s, 3), "kv_bytes": decoded.kv_bytes,
            "full_kv_bytes": (record["context_tokens"] + decoded.attended_tokens
                              - prepared["context_repr_tokens"]) * per_token_kv_bytes(model),
            "compression_ratio": round(record["context_tokens"] / prepared["context_repr_tokens"], 3),
            **{key: value for key, value in prepared.items() if key != "context_repr_tokens"},
        })
        if progress:
            progress()
    return predictions, summarize(predictions)


def summarize(predictions: list[dict]) -> dict:
    total = len(predictions)
    correct = sum(p["correct"] for p in predictions)
    low, high = wilson_interval(correct, total)
    metrics = {"n": total, "accuracy": round(correct / total, 4) if total else float("nan"),
               "accuracy_ci_low": round(low, 4), "accuracy_ci_high": round(high, 4),
               "hallucination_rate": round(sum(p["hallucinated"] for p in predictions) / total, 4),
               "compression_ratio": median([p["compression_ratio"] for p in predictions]),
               "context_tokens": median([p["context_tokens"] for p in predictions]),
               "kv_bytes": median([p["kv_bytes"] for p in predictions]),
               "full_kv_bytes": median([p["full_kv_bytes"] for p in predictions]),
               "ttft_s": median([p["ttft_s"] for p in predictions]),
               "decode_tokens_per_s": median([p["decode_tokens_per_s"] for p in predictions]),
               "peak_rss_mb": round(peak_rss_mb(), 1)}
    if torch.cuda.is_available():
        metrics["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    for variant in ("passkey", "keyed"):      # the bar is on the single passkey; keyed is reported beside it
        subset = [p for p in predictions if p["variant"] == variant]
        if subset:
            hits = sum(p["correct"] for p in subset)
            low, high = wilson_interval(hits, len(subset))
            metrics.update({f"accuracy_{variant}": round(hits / len(subset), 4), f"n_{variant}": len(subset),
                            f"accuracy_{variant}_ci_low": round(low, 4), f"accuracy_{variant}_ci_high": round(high, 4)})
    for source in sorted({p["haystack"] for p in predictions}):   # e.g. a haystack training never saw
        subset = [p for p in predictions if p["haystack"] == source]
        metrics[f"accuracy_haystack_{source}"] = round(sum(p["correct"] for p in subset) / len(subset), 4)
    for length in sorted({p["target_tokens"] for p in predictions}):
        subset = [p for p in predictions if p["target_tokens"] == length]
        metrics[f"accuracy_tokens_{length}"] = round(sum(p["correct"] for p in subset) / len(subset), 4)
    for key in ("compress_s", "index_s"):
        values = [p[key] for p in predictions if key in p]
        if values:
            metrics[f"{key}_median"] = median([float(v) for v in values])
    if any("retrieved_needle" in p for p in predictions):
        metrics["retrieval_recall"] = round(sum(p["retrieved_needle"] for p in predictions) / total, 4)
    metrics["threads"] = torch.get_num_threads()
    return metrics
