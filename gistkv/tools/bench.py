"""Benchmarks that print measured numbers (never asserted by timed tests).

    gistkv bench-load                      # seconds to load models/base
    gistkv bench-kv --lengths 1024,2048,4096   # artifact vs full KV bytes, compress tokens/s, TTFT ratios
    gistkv bench-onset --seeds 46,47,48        # does each seed leave the loss plateau by the check step?
    gistkv bench-step --lengths 128,512,1024,2048   # seconds per training step at each context length
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from gistkv.core.decode import greedy_decode
from gistkv.core.kv import GistKV, answer_ids, compress_ids
from gistkv.core.prompt import encode, query_text
from gistkv.data.haystack import load_sentences
from gistkv.errors import GistkvError


def time_load(base_dir: Path, repeats: int = 3) -> list[float]:
    from gistkv.core.model import load_base

    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        load_base(base_dir)
        seconds.append(time.perf_counter() - start)
    return seconds


def context_of(layout, length: int) -> list[int]:
    text = " ".join(load_sentences("pydoc")[: length])   # plenty of text; cut to the exact length
    ids = layout.document_ids(text)[: length - 30]        # the model card's head (BOS, chat turn) first, as in training
    return ids + encode(layout.tokenizer, " The pass key is 48213. Remember it. 48213 is the pass key.")


def kv_benchmark(compressor, lengths: list[int], repeats: int, workdir: Path) -> list[dict]:
    """Per length: artifact bytes, the full KV it replaces, compress tokens/s, TTFT from file vs full."""
    model, tokenizer = compressor.model, compressor.tokenizer
    prompt = compressor.layout.query_ids(query_text("What is the pass key?"))
    rows = []
    for length in lengths:
        context = context_of(compressor.layout, length)
        compress_s, ttft_gist, ttft_full = [], [], []
        path = workdir / f"bench_{length}.gist.safetensors"
        for repeat in range(repeats + 1):              # first round is warm-up
            start = time.perf_counter()
            gist_kv = compress_ids(compressor, context)
            elapsed = time.perf_counter() - start
            gist_kv.save(path)
            start = time.perf_counter()
            loaded = GistKV.load(path, compressor)
            gist_answer = answer_ids(compressor, loaded, prompt, max_new_tokens=1)
            from_file = time.perf_counter() - start       # load from disk + prefill + first token
            full = greedy_decode(model, torch.tensor([context + prompt]), max_new_tokens=1,
                                 stop_ids=compressor.stop_ids)
            if repeat:
                compress_s.append(elapsed)
                ttft_gist.append(from_file)
                ttft_full.append(full.ttft_s)
        full_kv = full.kv_bytes
        rows.append({"context_tokens": len(context), "artifact_bytes": path.stat().st_size,
                     "full_kv_bytes": full_kv, "kv_ratio": round(full_kv / path.stat().st_size, 1),
                     "compress_tokens_per_s": round(len(context) / statistics.median(compress_s), 1),
                     "ttft_ask_from_file_s": round(statistics.median(ttft_gist), 4),
                     "ttft_full_context_s": round(statistics.median(ttft_full), 4),
                     "ttft_speedup": round(statistics.median(ttft_full) / statistics.median(ttft_gist), 1),
                     "gist_first_token": tokenizer.decode(gist_answer.token_ids)})
    return rows


def onset(base_dir: Path, niah_dir: Path, params_path: Path, seeds: list[int], steps: int, workdir: Path,
          at: list[int] | None = None) -> list[dict]:
    """Train the first ``steps`` steps of the configured recipe once per seed (the same schedule and
    data order as the full run, without its held-out checks or the plateau guard) and return the
    mean training loss over the plateau window ending at each of ``at`` (steps 200, 300, ... up to ``steps``):
    a cheap screen of how often a recipe starts copying through the gist early (gistkv.training.plateau)."""
    import dataclasses
    import json
    import shutil

    from gistkv.params import load_section
    from gistkv.training.plateau import window_loss
    from gistkv.training.train import train_compressor
    from gistkv.training.train_config import GistParams, TrainParams
    from gistkv.training.train_records import training_documents, validation_documents

    gist = load_section(params_path, "gist", GistParams)
    recipe = load_section(params_path, "train", TrainParams)
    held_out = validation_documents(niah_dir, recipe.langs, recipe.validation_samples)
    rows = []
    for seed in seeds:
        params = dataclasses.replace(recipe, seed=seed, eval_steps=recipe.max_steps + 1, save_steps=steps,
                                     plateau_check_step=0)
        work = workdir / f"onset-{seed}"
        shutil.rmtree(work, ignore_errors=True)
        start = time.perf_counter()
        train_compressor(base_dir, training_documents(niah_dir, params.langs, seed), held_out, gist, params, work / "out",
                         work / "checkpoints", work / "metrics", stop_after_steps=steps)
        history = json.loads((work / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json").read_text())["log_history"]
        shutil.rmtree(work)
        rows.append({"seed": seed, "seconds": round(time.perf_counter() - start, 1),
                     **{f"loss@{step}": round(window_loss(history, step, recipe.plateau_window), 3)
                        for step in (at or range(200, steps + 1, 100))}})
    return rows


def step_seconds(base_dir: Path, niah_dir: Path, params_path: Path, lengths: list[int], steps: int) -> list[dict]:
    """Median seconds of one training step of the configured recipe (the gist loss, its backward
    pass, gradient clipping and an AdamW step: what the Trainer repeats, without its logging and
    checks) on ``steps`` training records of each context length, after one untimed warm-up step;
    training time is roughly the sum over the curriculum of these times."""
    from gistkv.core.gist import GistCollator, add_gist_tokens
    from gistkv.core.model import load_base
    from gistkv.params import load_section
    from gistkv.training.train import peft_wrap, step_dtype
    from gistkv.training.train_config import GistParams, TrainParams
    from gistkv.training.train_records import tokenize_documents, training_documents
    from gistkv.training.trainer import two_pass_loss

    gist = load_section(params_path, "gist", GistParams)
    params = load_section(params_path, "train", TrainParams)
    base = load_base(base_dir)
    gist_ids = add_gist_tokens(base.tokenizer, base.model, gist.num_tokens)
    model = peft_wrap(base.model, gist_ids, params, base.info["quantization"] == "nf4")
    model.train()
    dtype = step_dtype(base)
    trainable = [weight for weight in model.parameters() if weight.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=params.weight_decay)
    collate = GistCollator(gist_ids, base.tokenizer.pad_token_id, dtype, params.use_gist_mask)
    records = training_documents(niah_dir, params.langs, params.seed)
    rows = []
    for length in lengths:
        chosen = [record for record in records if record["target_tokens"] == length][: steps + 1]
        if not chosen:
            raise GistkvError(f"{niah_dir}: no training records of {length} tokens "
                              f"(niah.train.context_lengths).")
        seconds = []
        for example in tokenize_documents(chosen, base.layout):
            start = time.perf_counter()
            loss = two_pass_loss(model, collate([example]), len(gist_ids), dtype, params.use_gist_mask,
                                 context_autocast=params.context_autocast)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            optimizer.zero_grad()
            seconds.append(time.perf_counter() - start)
        rows.append({"context_tokens": length, "steps": len(seconds) - 1,
                     "step_s": round(statistics.median(seconds[1:] or seconds), 3)})
    return rows
