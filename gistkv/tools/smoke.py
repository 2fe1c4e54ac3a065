"""The paper-scale profile's smoke test: a few training steps, compression and an answer, in bfloat16 and in
4-bit (and with 2 processes when there are 2 GPUs), printing what it measured. No network needed.

    gistkv smoke-gpu                          # on a CUDA machine, after `dvc repro prepare_model make_niah`
    gistkv smoke-gpu --device cpu --steps 2   # the same path on the CPU (slow; what the tests run on a tiny model)
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


VARIANTS = ("float32", "bfloat16", "nf4")


def variant_dtype(name: str, device: str) -> str:
    """The load (and, for nf4, compute) dtype of a variant: nf4 multiplies in bfloat16 only where bfloat16 is
    native, since emulated bfloat16 made a CPU training step ~7x slower than float32."""
    from gistkv.hardware import native_bfloat16

    if name == "nf4":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return name


def one_variant(base: Path, niah: Path, params_path: Path, steps: int, work: Path) -> dict:
    import torch

    from gistkv.core.compressor import load_compressor
    from gistkv.core.kv import GistKV, answer, compress
    from gistkv.params import load_section
    from gistkv.training.train import train_compressor
    from gistkv.training.train_config import GistParams, TrainParams
    from gistkv.training.train_records import training_documents, validation_documents

    gist = load_section(params_path, "gist", GistParams)
    train = load_section(params_path, "train", TrainParams)
    train = dataclasses.replace(train, max_steps=steps, eval_steps=steps, save_steps=steps, validation_samples=2,
                                logging_steps=1, warmup_steps=0, curriculum=False, plateau_check_step=0)
    documents = sorted(training_documents(niah, train.langs, train.seed), key=lambda d: -d["context_tokens"])[:steps]
    held_out = validation_documents(niah, train.langs, 2)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = train_compressor(base, documents, held_out, gist, train, work / "gist", work / "ckpt", work / "metrics")
    compressor = load_compressor(work / "gist")
    start = time.perf_counter()
    compress(compressor, documents[0]["context"]).save(work / "doc.safetensors")
    compress_s = time.perf_counter() - start
    reply = answer(compressor, GistKV.load(work / "doc.safetensors", compressor), documents[0]["questions"][0]["question"])
    return {"quantization": result["quantization"], "dtype": result["dtype"], "device": result["device"],
            "steps": result["steps"], "longest_context_tokens": documents[0]["context_tokens"],
            "train_s_without_checks": result["train_wall_s_without_checks"],
            "s_per_step": round(result["train_wall_s_without_checks"] / max(result["steps"], 1), 3),
            "compress_s": round(compress_s, 3), "artifact_bytes": (work / "doc.safetensors").stat().st_size,
            "answer": " ".join(reply.split())[:40],
            "peak_cuda_gib": round(torch.cuda.max_memory_allocated() / (1 << 30), 2) if torch.cuda.is_available() else None}


def two_processes(base: Path, niah: Path, params_path: Path, steps: int, work: Path) -> dict:
    """The train stage itself under `accelerate launch` with train.num_processes: 2 (DDP)."""
    params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    params["train"].update(num_processes=2, max_steps=steps, eval_steps=steps, save_steps=steps, validation_samples=2,
                           logging_steps=1)
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


def smoke(base_dir: Path, niah: Path, params_path: Path, steps: int, device: str, variants: list[str]) -> list[dict]:
    import torch

    rows = []
    with tempfile.TemporaryDirectory(prefix="gistkv-smoke-") as scratch:
        root = Path(scratch)
        for name in variants:
            base = variant_base(base_dir, root / name / "base", variant_dtype(name, device), name == "nf4", device)
            start = time.perf_counter()
            try:
                row = {"variant": name, **one_variant(base, niah, params_path, steps, root / name)}
            except Exception as err:      # noqa: BLE001 - a smoke test reports every failure and goes on
                row = {"variant": name, "error": f"{type(err).__name__}: {err}"[:300]}
            row["wall_s"] = round(time.perf_counter() - start, 1)
            rows.append(row)
        if device == "cuda" and torch.cuda.device_count() > 1:
            base = variant_base(base_dir, root / "ddp" / "base", "bfloat16", True, "cuda")
            rows.append({"variant": "nf4 x 2 processes", **two_processes(base, niah, params_path, steps, root / "ddp")})
        shutil.rmtree(root, ignore_errors=True)
    return rows


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
