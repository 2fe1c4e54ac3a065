"""The paper-scale profile's smoke test: a few training steps, compression and an answer, in bfloat16 and in
4-bit (and with 2 processes when there are 2 GPUs), printing what it measured. No network needed.

    gistkv smoke-gpu                          # on a CUDA machine, after `dvc repro prepare_model make_niah`
    gistkv smoke-gpu --device cpu --steps 2   # the same path on the CPU (slow; what the tests run on a tiny model)
    gistkv smoke-gpu --shape llama3-8b --batch-size 4 --steps 4   # Llama-3-8B's shape, random weights: time, memory

Each row sets the measured peak of GPU memory in training beside ``gistkv doctor --plan``'s estimate for the same
settings, so the plan a 24 GB user reads before launching is checked against a run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import yaml

from gistkv.core.model import BASE_META, read_base_meta
from gistkv.io import write_json


def variant_base(base_dir: Path, folder: Path, dtype: str, four_bit: bool, device: str) -> Path:
    """A base folder that loads the same weights another way (its own gistkv_base.json, links to the files)."""
    folder.mkdir(parents=True)
    for path in base_dir.iterdir():
        if path.name != BASE_META:
            (folder / path.name).symlink_to(path.resolve())
    meta = read_base_meta(base_dir)
    meta["load"] = dict(meta["load"], dtype=dtype, load_in_4bit=four_bit, device=device)
    if meta.get("path"):                     # a local source folder: keep pointing at it
        meta["path"] = str(Path(meta["path"]).resolve())
    write_json(folder / BASE_META, meta)
    return folder


# A few steps measure time and memory, not learning: a constant rate (train's decay would not fit in them).
SMOKE_SCHEDULE = {"lr_scheduler": "constant", "lr_scheduler_kwargs": {}}
VARIANTS = ("float32", "bfloat16", "nf4")

# Llama-3-8B's architecture as its config.json publishes it. Random weights of this shape time a training step and
# measure its memory as the real model would, with no download or licence; their answers mean nothing.
SHAPES = {"llama3-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                        "max_position_embeddings": 8192, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
                        "tie_word_embeddings": False}}


def synthetic_base(base_dir: Path, folder: Path, shape: dict, device: str) -> Path:
    """A prepared base folder: a Llama model of SHAPE with random bfloat16 weights (seed 0) and BASE_DIR's tokenizer.

        python -c "from pathlib import Path; from gistkv.tools.smoke import SHAPES, synthetic_base; \\
                   synthetic_base(Path('models/base'), Path('/tmp/l3'), SHAPES['llama3-8b'], 'cuda')"
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from gistkv.core.model import ModelParams, prepare_base

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    config = LlamaConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    with torch.device(device):           # drawn where it runs: 8B weights drawn on a CPU would take minutes
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(str(folder / "weights"))
    tokenizer.save_pretrained(str(folder / "weights"))
    del model
    params = ModelParams(source=str(folder / "weights"), embedded_package="unused", embedded_gguf="unused",
                         embedded_sha256="0", dtype="bfloat16", load_in_4bit=False, device=device,
                         chat_template=bool(read_base_meta(base_dir)["load"].get("chat_template", False)))
    prepare_base(params, folder / "base", folder / "downloads")
    return folder / "base"


def planned_gib(base: Path, train, gist_tokens: int, context_tokens: int) -> float:
    """``gistkv doctor --plan``'s total for this base folder and these settings."""
    from transformers import AutoConfig

    from gistkv.core.model import model_location
    from gistkv.tools.doctor import memory_plan

    load = read_base_meta(base)["load"]
    config = AutoConfig.from_pretrained(model_location(base)).to_dict()
    rows = memory_plan(config, load, dataclasses.asdict(train), gist_tokens, context_tokens)
    return float(f"{rows[-1][1]:.3g}")        # three significant digits: a tiny model's plan is not 0.0


def variant_dtype(name: str, device: str) -> str:
    """The load (and, for nf4, compute) dtype of a variant: nf4 multiplies in bfloat16 only where bfloat16 is
    native, since emulated bfloat16 made a CPU training step ~7x slower than float32."""
    from gistkv.hardware import native_bfloat16

    if name == "nf4":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return name


def steady_step_s(history: list[dict]) -> float | None:
    """Seconds per step after the first (which pays for CUDA's and the allocator's warm-up), from the logged
    cumulative ``train_runtime`` of each step; None with fewer than two logged steps."""
    # Each step's log carries the run's train_runtime because training counts input tokens
    # (include_num_input_tokens_seen, gistkv/training/train.py); a resumed run's history mixes sessions.
    runtimes = [entry["train_runtime"] for entry in history if "loss" in entry and "train_runtime" in entry]
    return round((runtimes[-1] - runtimes[0]) / (len(runtimes) - 1), 3) if len(runtimes) > 1 else None


def one_variant(base: Path, niah: Path, params_path: Path, steps: int, work: Path, overrides: dict) -> dict:
    from gistkv.core.compressor import load_compressor
    from gistkv.core.kv import GistKV, answer, compress
    from gistkv.params import load_section
    from gistkv.training.train import num_gist_tokens, train_compressor
    from gistkv.training.train_config import GistParams, TrainParams
    from gistkv.training.train_records import training_documents, validation_documents

    gist = load_section(params_path, "gist", GistParams)
    train = load_section(params_path, "train", TrainParams)
    train = dataclasses.replace(train, max_steps=steps, eval_steps=steps, save_steps=steps, validation_samples=2,
                                logging_steps=1, warmup_steps=0, curriculum=False, plateau_check_step=0,
                                **SMOKE_SCHEDULE, **overrides)
    documents = sorted(training_documents(niah, train.langs, train.seed),
                       key=lambda d: -d["context_tokens"])[:steps * train.batch_size * train.gradient_accumulation_steps]
    held_out = validation_documents(niah, train.langs, 2)
    result = train_compressor(base, documents, held_out, gist, train, work / "gist", work / "ckpt", work / "metrics")
    compressor = load_compressor(work / "gist")
    start = time.perf_counter()
    compress(compressor, documents[0]["context"]).save(work / "doc.safetensors")
    compress_s = time.perf_counter() - start
    reply = answer(compressor, GistKV.load(work / "doc.safetensors", compressor), documents[0]["questions"][0]["question"])
    return {"quantization": result["quantization"], "dtype": result["dtype"], "device": result["device"],
            "steps": result["steps"], "batch_size": train.batch_size,
            "gradient_checkpointing": train.gradient_checkpointing,
            "longest_context_tokens": documents[0]["context_tokens"],
            "train_s_without_checks": result["train_wall_s_without_checks"],
            "s_per_step": round(result["train_wall_s_without_checks"] / max(result["steps"], 1), 3),
            "s_per_step_after_first": steady_step_s(result["history"]),
            "compress_s": round(compress_s, 3), "artifact_bytes": (work / "doc.safetensors").stat().st_size,
            "answer": " ".join(reply.split())[:40],
            "peak_load_cuda_gib": result["cuda_peak_gib"]["load"], "peak_train_cuda_gib": result["cuda_peak_gib"]["train"],
            "peak_train_reserved_cuda_gib": result["cuda_peak_gib"]["train_reserved"],
            "plan_gib": planned_gib(base, train, num_gist_tokens(gist, train), documents[0]["context_tokens"])}


def two_processes(base: Path, niah: Path, params_path: Path, steps: int, work: Path, overrides: dict) -> dict:
    """The train stage itself under `accelerate launch` with train.num_processes: 2 (DDP)."""
    params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    params["train"].update(num_processes=2, max_steps=steps, eval_steps=steps, save_steps=steps, validation_samples=2,
                           logging_steps=1, warmup_steps=0, **SMOKE_SCHEDULE, **overrides)
    (work / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).parents[2] / "stages" / "train_gist.py"),
                           "--params", str(work / "params.yaml"), "--base", str(base), "--niah", str(niah),
                           "--out", str(work / "gist"), "--checkpoints", str(work / "ckpt"), "--metrics",
                           str(work / "metrics")], capture_output=True, text=True)
    row = {"exit_code": done.returncode, "wall_s": round(time.perf_counter() - start, 1)}
    if done.returncode == 0:
        result = json.loads((work / "metrics" / "train.json").read_text())
        row.update(num_processes=result["num_processes"], steps=result["steps"], train_loss=result["train_loss"])
    else:
        row["error"] = done.stderr.strip().splitlines()[-1:] or ["?"]
    return row


def smoke(base_dir: Path, niah: Path, params_path: Path, steps: int, device: str, variants: list[str],
          shape: dict | None = None, overrides: dict | None = None) -> list[dict]:
    """One row per variant; with SHAPE, on random weights of that shape (``synthetic_base``) instead of BASE_DIR's."""
    import torch

    from gistkv.training.train import release_memory

    rows = []
    with tempfile.TemporaryDirectory(prefix="gistkv-smoke-") as scratch:
        root = Path(scratch)
        if shape is not None:
            start = time.perf_counter()
            base_dir = synthetic_base(base_dir, root / "synthetic", shape, device)
            release_memory()
            rows.append({"variant": "random weights drawn and saved", "wall_s": round(time.perf_counter() - start, 1)})
        for name in variants:
            base = variant_base(base_dir, root / name / "base", variant_dtype(name, device), name == "nf4", device)
            start = time.perf_counter()
            try:
                row = {"variant": name, **one_variant(base, niah, params_path, steps, root / name, overrides or {})}
            except Exception as err:      # noqa: BLE001 - a smoke test reports every failure and goes on
                traceback.print_exc()     # to stderr: where it failed, beside the one-line row
                row = {"variant": name, "error": f"{type(err).__name__}: {err}"[:300]}
            row["wall_s"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            release_memory()
        if device == "cuda" and torch.cuda.device_count() > 1:
            base = variant_base(base_dir, root / "ddp" / "base", "bfloat16", True, "cuda")
            rows.append({"variant": "nf4 x 2 processes", **two_processes(base, niah, params_path, steps, root / "ddp",
                                                                      overrides or {})})
        shutil.rmtree(root, ignore_errors=True)
    return rows


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
