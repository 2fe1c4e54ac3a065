"""The report renders from a small fixture of metric files: table values and valid PNGs."""

import json

from PIL import Image

from gistkv.io import write_json, write_jsonl
from gistkv.params import read_params
from gistkv.report import Targets, build_report


def metrics_for(method, accuracy, compression, kv_bytes, tps, passkey=None):
    return {"method": method, "dataset": "niah_en", "n": 4, "accuracy": accuracy, "accuracy_ci_low": 0.1,
            "accuracy_ci_high": 0.9, "compression_ratio": compression, "kv_bytes": kv_bytes, "peak_rss_mb": 900.0,
            "ttft_s": 0.5, "decode_tokens_per_s": tps, "hallucination_rate": 0.25,
            "accuracy_passkey": accuracy if passkey is None else passkey, "n_passkey": 3,
            "accuracy_passkey_ci_low": 0.2, "accuracy_passkey_ci_high": 0.95}


def predictions(correct, asserted=("12345",) * 4):
    return [{"depth_bin": depth, "target_tokens": length, "correct": ok, "variant": "passkey", "answer": "12345",
             "asserted": said}
            for (depth, length), ok, said in zip([(0.2, 512), (0.2, 1024), (0.8, 512), (0.8, 1024)], correct, asserted)]


def test_report_from_fixture(tmp_path):
    metrics, preds = tmp_path / "metrics", tmp_path / "preds"
    write_json(metrics / "eval/full_niah_en.json", metrics_for("full", 0.75, 1.0, 40_000_000, 16.0))
    # Overall accuracy above the bar, single passkey below it: the bar is on the single passkey.
    write_json(metrics / "eval/gist_niah_en.json", metrics_for("gist", 0.95, 102.4, 460_800, 20.0, passkey=0.85))
    write_json(metrics / "eval/lora_niah_en.json", metrics_for("lora", 1.0, 1.0, 40_100_000, 16.0))
    write_jsonl(preds / "lora_niah_en.jsonl", predictions([True, True, True, True]))
    write_jsonl(preds / "full_niah_en.jsonl", predictions([True, True, True, False]))
    write_jsonl(preds / "gist_niah_en.jsonl", predictions([True, False, False, False], ["12345", "12335", "12365", None]))
    (metrics / "train").mkdir()
    (metrics / "train/loss.tsv").write_text("step\tloss\n10\t3.0\n20\t1.0\n")
    (metrics / "train/val_accuracy.tsv").write_text("step\tval_accuracy\n0\t0.0\n20\t0.5\n")
    flat = build_report(metrics, preds, tmp_path / "no-longbench", read_params("params.yaml"),
                        Targets(passkey_accuracy=0.9, compression_min=100, memory_saving=0.5), tmp_path / "report")
    assert flat["gist.niah_en.accuracy"] == 0.95 and flat["full.niah_en.kv_bytes"] == 40_000_000
    assert json.loads((metrics / "summary.json").read_text()) == flat
    text = (tmp_path / "report/report.md").read_text()
    assert "| accuracy, all questions | 75.0 % | 95.0 % | 100.0 % |" in text
    assert "| 95 % CI (Wilson), single passkey | [20.0 %, 95.0 %] | [20.0 %, 95.0 %] | [20.0 %, 95.0 %] |" in text
    assert "| single-passkey accuracy ≥ 90% | 85.0 % (Wilson lower bound 20.0 %, n = 3) | **not met** |" in text
    assert "single passkey 85.0 % vs 100.0 %." in text and "LoRA control (full context)" in text
    assert "| compression ≥ 100x | 102.4x | met |" in text
    assert "LongBench: not evaluated" in text
    assert ("Gist: 3 wrong single-passkey answers, 2 of them near misses (a number of the key's length), 2 one digit "
            "off; wrong digits by position: 1: 0, 2: 0, 3: 0, 4: 2, 5: 0.") in text
    assert "gist (answers from the gist cache): 0% → 50%." in text and "never the eval split" in text
    for name, size in [("heatmap_gist_niah_en.png", None), ("accuracy_vs_compression.png", (600, 400)),
                       ("loss.png", (600, 400)), ("accuracy_vs_steps.png", (600, 400))]:
        with Image.open(tmp_path / "report" / name) as image:
            image.verify()
        with Image.open(tmp_path / "report" / name) as image:
            assert image.format == "PNG" and (size is None or image.size == size)


def test_the_report_names_the_seed_that_trained_and_the_restarts_before_it():
    from gistkv.report import training_seed

    assert training_seed({"seed": 42, "plateau_restarts": []}) == "seed 42"
    restarted = {"seed": 1045, "plateau_restarts": [{"seed": 45, "loss": 1.3281, "train_s": 400.0}]}
    assert training_seed(restarted) == "seed 1045 (seed 45 restarted: on the loss plateau at the check, loss 1.328)"
