"""train.init_from: a run starts from a trained compressor's adapter, or refuses one of another shape."""

import pytest
import torch
from safetensors.torch import load_file
from test_train import documents, train_params

from gistkv.errors import GistkvError
from gistkv.training.train import train_compressor
from gistkv.training.train_config import GistParams
from gistkv.training.warm_start import ADAPTER_WEIGHTS


@pytest.fixture(scope="module")
def seed_compressor(tiny_base, tmp_path_factory):
    """A tiny compressor (2 gist tokens, 4 steps at a high constant rate, so its adapter is far from a fresh one)."""
    root = tmp_path_factory.mktemp("seed")
    result = train_compressor(tiny_base, documents(12), documents(2, 100), GistParams(num_tokens=2),
                              train_params(learning_rate=3e-2, lr_scheduler="constant", lr_scheduler_kwargs={}),
                              root / "gist", root / "ckpt", root / "m")
    return root / "gist", result


def test_a_warm_start_begins_where_its_seed_compressor_ended(tiny_base, tmp_path, seed_compressor):
    gist_dir, seed = seed_compressor
    args = (tiny_base, documents(12, start=50), documents(2, 100), GistParams(num_tokens=2))
    outputs = (tmp_path / "gist", tmp_path / "ckpt", tmp_path / "m")
    warm = train_compressor(*args, train_params(max_steps=2, init_from=str(gist_dir)), *outputs)
    # the same dev documents, read through the seed's adapter and gist rows: the seed's last held-out loss
    assert warm["eval_loss_initial"] == pytest.approx(seed["eval_loss_final"], abs=1e-4)
    cold = train_compressor(*args, train_params(max_steps=2), tmp_path / "cold", tmp_path / "ckpt-cold", tmp_path / "mc")
    assert abs(cold["eval_loss_initial"] - seed["eval_loss_final"]) > 1e-3    # which a fresh LoRA does not start at
    # a retrained seed must not let the warm run resume checkpoints made from the old one
    again = train_compressor(*args, train_params(max_steps=2, init_from=str(tmp_path / "cold")), *outputs)
    assert again["resumed_from"] == "" and again["eval_loss_initial"] == pytest.approx(cold["eval_loss_final"], abs=1e-4)


def test_a_seed_of_another_shape_or_no_seed_is_a_one_line_error(tiny_base, tmp_path, seed_compressor):
    gist_dir, _ = seed_compressor
    run = (tiny_base, documents(4), documents(2, 100))
    outputs = (tmp_path / "gist", tmp_path / "ckpt", tmp_path / "m")
    with pytest.raises(GistkvError, match=r"compressor.json has num_gist_tokens=2 but this run trains num_gist_tokens=1"):
        train_compressor(*run, GistParams(num_tokens=1), train_params(init_from=str(gist_dir)), *outputs)
    with pytest.raises(GistkvError, match=r"has lora=.*'r': 4.* but this run trains lora=.*'r': 8"):
        train_compressor(*run, GistParams(num_tokens=2), train_params(lora_r=8, init_from=str(gist_dir)), *outputs)
    with pytest.raises(GistkvError, match=r"train.init_from: .*nowhere/compressor.json: missing"):
        train_compressor(*run, GistParams(num_tokens=2), train_params(init_from=str(tmp_path / "nowhere")), *outputs)
    assert not (tmp_path / "gist").exists()      # refused before anything was written


def test_a_warm_start_is_not_restarted_by_the_plateau_check(tiny_base, tmp_path, seed_compressor):
    gist_dir, _ = seed_compressor
    always_stuck = dict(plateau_check_step=2, plateau_window=2, plateau_loss=-1.0, plateau_restarts=1)
    warm = train_compressor(tiny_base, documents(4), documents(2, 100), GistParams(num_tokens=2),
                            train_params(init_from=str(gist_dir), **always_stuck), tmp_path / "gist", tmp_path / "ckpt",
                            tmp_path / "m")
    assert warm["plateau_restarts"] == [] and warm["seed"] == 42 and warm["steps"] == 4


def test_a_run_with_more_gist_tokens_grows_from_its_seeds_rows_fresh_or_tiled(tiny_base, tmp_path, seed_compressor):
    gist_dir, _ = seed_compressor
    # a rate too small to move a weight, so the saved adapter shows what the warm start loaded
    train_compressor(tiny_base, documents(4), documents(2, 100), GistParams(num_tokens=3),
                     train_params(max_steps=1, learning_rate=1e-12, init_from=str(gist_dir)),
                     tmp_path / "gist", tmp_path / "ckpt", tmp_path / "m")
    seed, grown = (load_file(str(folder / "adapter" / ADAPTER_WEIGHTS)) for folder in (gist_dir, tmp_path / "gist"))
    (rows_name,) = [name for name in seed if name.endswith("trainable_tokens_delta")]
    assert seed[rows_name].shape[0] == 2 and grown[rows_name].shape[0] == 3
    assert torch.allclose(grown[rows_name][:2], seed[rows_name], atol=1e-6)
    assert not torch.allclose(grown[rows_name][2], seed[rows_name][1], atol=1e-3)    # the new token is its own
    lora = [name for name in seed if "lora_" in name]
    assert lora and all(torch.allclose(grown[name], seed[name], atol=1e-6) for name in lora)
    # train.init_tile: the seed's rows over again (a groups:G view gives each group the seed's gist)
    train_compressor(tiny_base, documents(4), documents(2, 100), GistParams(num_tokens=4),
                     train_params(max_steps=1, learning_rate=1e-12, init_from=str(gist_dir), init_tile=True),
                     tmp_path / "tiled", tmp_path / "ckpt-tiled", tmp_path / "mt")
    tiled = load_file(str(tmp_path / "tiled" / "adapter" / ADAPTER_WEIGHTS))[rows_name]
    assert torch.allclose(tiled, seed[rows_name].repeat(2, 1), atol=1e-6)
