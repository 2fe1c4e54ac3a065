"""What this machine offers for gistkv: versions, CUDA, bitsandbytes, the base model's state, and a memory plan.

    gistkv doctor
    gistkv doctor --plan --params params.yaml        # will this config's training fit this device?
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path

from gistkv.core.model import BASE_META, read_base_meta
from gistkv.hardware import describe
from gistkv.io import sha256_file


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
        return f"{version('bitsandbytes')} installed, no CUDA device: NF4 4-bit runs on its (slower) CPU path"
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


BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def memory_plan(config: dict, model: dict, train: dict, gist_tokens: int, context_tokens: int) -> list[tuple[str, float]]:
    """Estimated GiB of one training process: weights (NF4 ~0.5 byte per quantized weight), LoRA adapter with
    AdamW's two moments and its gradient (float32), the document's KV cache, the activations kept for
    backward (~34 values per hidden unit per token per layer) of the tokens that run with gradients: the
    gist/question pass, a few hundred tokens, with ``context_encoder: base`` (the document is read without
    gradients), the whole document too with ``adapted``; and the output layer's share: the tail's logits with
    their float32 log-softmax, and under 4-bit a copy of the head per document (below). Documents of a batch run
    one at a time but all keep their graphs until backward. ``gradient_checkpointing`` keeps one hidden state
    per layer and replays one layer at a time instead. An estimate from the config, checked against runs
    (README, Paper scale), not a measurement."""
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim") or hidden // heads
    inter, vocab = config["intermediate_size"], config["vocab_size"]
    tied = bool(config.get("tie_word_embeddings"))
    per_layer = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + 3 * hidden * inter
    embeddings = vocab * hidden * (1 if tied else 2)
    element, batch = BYTES[model["dtype"]], train["batch_size"]
    quantized = model.get("load_in_4bit", False)
    # QLoRA: peft's prepare_model_for_kbit_training casts the unquantized weights (embeddings, head, norms) to
    # float32, and a bitsandbytes layer returns its input's dtype, so the KV cache is float32 too.
    wide = 4 if quantized else element
    weights = layers * per_layer * (0.5 if quantized else element) + embeddings * wide
    r = train["lora_r"]
    sizes = {"q_proj": (hidden, heads * head_dim), "k_proj": (hidden, kv_heads * head_dim),
             "v_proj": (hidden, kv_heads * head_dim), "o_proj": (heads * head_dim, hidden),
             "gate_proj": (hidden, inter), "up_proj": (hidden, inter), "down_proj": (inter, hidden)}
    lora = layers * sum(r * (sizes[name][0] + sizes[name][1]) for name in train["target_modules"] if name in sizes)
    lora += gist_tokens * hidden
    adapter = lora * 4 * 4                              # weights, gradient, two AdamW moments, float32
    kv = 2 * layers * kv_heads * head_dim * context_tokens * wide * batch
    tail_tokens = gist_tokens + 64 * 4                  # gist tokens and up to four question/answer blocks
    with_grad = tail_tokens + (context_tokens if train.get("context_encoder", "base") == "adapted" else 0)
    per_token = (layers + 34) if train.get("gradient_checkpointing") else 34 * layers
    activations = per_token * hidden * with_grad * element * batch     # autocast saves its casts: model.dtype
    output = tail_tokens * vocab * (element + 4) * batch                 # logits and their float32 log-softmax
    if quantized and tied:      # the gist-row head (gistkv.training.peft_fast) keeps one copy with the rows in
        output += vocab * hidden * wide
    elif quantized and element < 4:   # autocast's copy of the float32 head, saved for backward per document
        output += vocab * hidden * element * batch
    gib = 1 << 30
    rows = [("weights", weights), ("LoRA + gist rows, grads, AdamW", adapter),
            (f"KV cache of a {context_tokens:,}-token document", kv), ("activations for backward", activations),
            ("output layer: logits, log-softmax, head copies", output)]
    return [(name, value / gib) for name, value in rows] + [("total (estimate)", sum(v for _, v in rows) / gib)]


def device_memory_gib() -> tuple[str, float]:
    import psutil
    import torch

    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return f"CUDA device 0 ({torch.cuda.get_device_name(0)})", total / (1 << 30)
    return "CPU RAM", psutil.virtual_memory().total / (1 << 30)
