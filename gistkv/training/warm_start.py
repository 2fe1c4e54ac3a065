"""Start training from a trained compressor's adapter (``train.init_from``) instead of a fresh LoRA.

A warm start lets a recipe order its task: learn the copy through the gist on an easy mixture
first (one fact, few needle families), then go on from there with a harder one (all families,
several facts, absent questions). The earlier compressor's LoRA weights and gist-token rows are
copied into the freshly wrapped model before the first step; the optimizer and the learning-rate
schedule start anew, as the new recipe says.

    python stages/train_gist.py --params P --out models/gist-stage2    # P: train.init_from: models/gist-stage1

Only a compressor of the same shape can seed a run: the same base weights, LoRA rank/alpha/modules,
gist mask and context encoder; anything else is a one-line error naming the field. The one allowed
difference is growth: a run with more gist tokens than its seed takes the seed's rows for its first
tokens and starts the others fresh, so a copy already learned with 10 tokens carries into a run
with 30 (a capacity test that skips the loss plateau a cold start with many tokens sits on).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from gistkv.core.compressor import ADAPTER_DIR, COMPRESSOR_META, read_compressor_meta
from gistkv.errors import GistkvError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
GROWABLE = "num_gist_tokens"          # the one field a seed may have less of (its rows fill the first tokens)


def adapter_file(init_from: str | Path) -> Path:
    """The adapter weights of the compressor in ``init_from``; a missing one is a one-line error."""
    path = Path(init_from) / ADAPTER_DIR / ADAPTER_WEIGHTS
    if not path.exists():
        raise GistkvError(f"train.init_from: {path} is missing; name a folder train_gist wrote "
                          "(adapter/, compressor.json), e.g. models/gist.")
    return path


def warm_start_digest(init_from: str | Path) -> str:
    """sha256 of the adapter a run starts from: part of the checkpoints' fingerprint, so a retrained
    seed compressor does not resume a run that started from the old one."""
    return hashlib.sha256(adapter_file(init_from).read_bytes()).hexdigest()


def check_same_shape(init_from: str | Path, expected: dict) -> None:
    """Refuse a seed compressor whose recorded shape differs from the run's (``expected``: the fields of
    compressor.json this run would write: num_gist_tokens, lora, use_gist_mask, context_encoder,
    base_weights_sha256)."""
    meta_path = Path(init_from) / COMPRESSOR_META
    if not meta_path.exists():
        raise GistkvError(f"train.init_from: {meta_path}: missing; name a folder train_gist wrote, e.g. models/gist.")
    meta = read_compressor_meta(meta_path)
    for key, want in expected.items():
        if key == GROWABLE and isinstance(meta.get(key), int) and 0 < meta[key] <= want:
            continue
        if meta.get(key) != want:
            raise GistkvError(f"train.init_from: {meta_path} has {key}={meta.get(key)!r} but this run trains "
                              f"{key}={want!r}; warm-start only from a compressor of the same shape.")


def load_warm_start(model, init_from: str | Path, tile: bool = False) -> int:
    """Copy the adapter in ``init_from`` (LoRA A/B and the gist-token rows) into the peft ``model`` (a model with more
    gist tokens: ``grown_gist_rows``, ``tile`` as there);
    returns the number of tensors loaded. Every saved tensor must find its place, and every trained
    tensor of the model must be covered, or the run would silently start half fresh."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    path = adapter_file(init_from)
    # what peft would save for this model, as training saved the seed's (save_embedding_layers=False)
    fresh = get_peft_model_state_dict(model, save_embedding_layers=False)
    state = grown_gist_rows(load_file(str(path)), fresh, tile)
    missing = sorted(set(fresh) - set(state))
    result = set_peft_model_state_dict(model, state)
    if result.unexpected_keys:
        raise GistkvError(f"train.init_from: {path} holds tensors this model lacks "
                          f"({', '.join(sorted(result.unexpected_keys)[:3])}, ...); warm-start from a compressor "
                          "of the same shape.")
    if missing:
        raise GistkvError(f"train.init_from: {path} lacks {len(missing)} trained tensors "
                          f"(e.g. {missing[0]}); warm-start from a compressor of the same shape.")
    return len(state)


def grown_gist_rows(state: dict, fresh: dict, tile: bool = False) -> dict:
    """The seed's ``state`` with each gist-row tensor that has fewer rows than the model's (``fresh``, its own
    state before loading) completed: by the model's fresh rows after the seed's (as ``gist_init`` drew them), or
    with ``tile`` by the seed's rows over again (row i takes seed row i mod n). Tensors of equal shape pass unchanged.

        >>> seed, fresh = {"t.trainable_tokens_delta": torch.tensor([[1.], [2.]])}, {"t.trainable_tokens_delta": torch.zeros(5, 1)}
        >>> grown_gist_rows(seed, fresh)["t.trainable_tokens_delta"].flatten().tolist()
        [1.0, 2.0, 0.0, 0.0, 0.0]
        >>> grown_gist_rows(seed, fresh, tile=True)["t.trainable_tokens_delta"].flatten().tolist()
        [1.0, 2.0, 1.0, 2.0, 1.0]
    """
    grown = dict(state)
    for name, rows in state.items():
        if name.endswith("trainable_tokens_delta") and name in fresh and rows.shape[0] < fresh[name].shape[0]:
            want, rows = fresh[name], rows.to(fresh[name])
            grown[name] = rows.repeat(-(-len(want) // len(rows)), 1)[:len(want)] if tile else torch.cat([rows, want[len(rows):]])
    return grown
