"""What this machine offers for gistkv: versions, CUDA, bitsandbytes, the base model's state.

    gistkv doctor
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path

from gistkv.hardware import describe
from gistkv.io import sha256_file
from gistkv.model import BASE_META, read_base_meta


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def bitsandbytes_status() -> str:
    import torch

    if version("bitsandbytes") == "not installed":
        return "not installed (4-bit QLoRA unavailable)"
    if not torch.cuda.is_available():
        return f"{version('bitsandbytes')} installed, but no CUDA device: NF4 4-bit loading unavailable here"
    return f"{version('bitsandbytes')} with CUDA: NF4 4-bit available"


def base_model_status(base_dir: Path) -> str:
    if not (base_dir / BASE_META).exists():
        return f"{base_dir}: not prepared (run `dvc repro prepare_model`)"
    meta = read_base_meta(base_dir)
    if meta["kind"] != "embedded-gguf":
        return f"{base_dir}: {meta['kind']} -> {meta['model_id']}"
    weights = base_dir / "model.safetensors"
    if not weights.exists():
        return f"{base_dir}: model.safetensors missing"
    ok = sha256_file(weights) == meta["weights_sha256"]
    return f"{base_dir}: {meta['model_id']} (weights sha256 {'verified' if ok else 'MISMATCH — re-run prepare_model'})"


def report(base_dir: Path) -> list[tuple[str, str]]:
    import torch

    cuda = (f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s): "
            + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            if torch.cuda.is_available() else f"no CUDA device (torch built with CUDA {torch.version.cuda})")
    return [("python", sys.version.split()[0]), ("platform", platform.platform()),
            ("torch", f"{torch.__version__}; {cuda}; {torch.get_num_threads()} CPU threads"),
            ("bfloat16 matmuls", describe("cuda" if torch.cuda.is_available() else "cpu")),
            ("bitsandbytes", bitsandbytes_status())] + [
        (name, version(name)) for name in ("transformers", "peft", "accelerate", "safetensors", "gguf", "dvc",
                                           "dvclive", "chromadb", "sentence-transformers")] + [
        ("base model", base_model_status(base_dir))]
