"""Stage train_gist: LoRA + gist-token training on the NIAH train splits (EN and KO mixed).

    python stages/train_gist.py                         # default CPU run (see README for timing)
    dvc exp run -S gist.num_tokens=25                   # variant; only downstream stages re-run
    python stages/train_gist.py   # with train.num_processes: 2 -> DDP workers (accelerate on CUDA)
    python stages/train_gist.py --control --out models/lora --checkpoints models/lora_checkpoints \
        --metrics metrics/train_lora                    # plain-LoRA control: same recipe, no gist tokens

Trains on data/niah/<lang>/train.jsonl (after the rungs of niah.ladder in ladder.jsonl, if any: each rung
warm-starts the next, gistkv.training.ladder); the held-out checks answer the first train.validation_samples
dev documents (data/niah/<lang>/dev.jsonl), never test. Writes models/gist/ (adapter, tokenizer,
compressor.json), metrics/train/train.json, metrics/train/{loss,eval_loss,val_accuracy}.tsv (dvc plots;
val_accuracy = dev answers right, measured with the inference code) and metrics/train/gist_mask.png;
checkpoints go to the persisted models/gist_checkpoints/ so an interrupted run resumes.
"""

import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import typer

from gistkv.core.gist import CONTEXT, GIST, GistCollator, gist_token_strings
from gistkv.io import atomic_dir, write_json, write_text
from gistkv.params import load_section
from gistkv.reporting.mask_plot import plot_mask
from gistkv.stage import stage_errors
from gistkv.training.ladder import climb, rung_documents
from gistkv.training.train import curve, train_compressor
from gistkv.training.train_config import GistParams, TrainParams
from gistkv.training.train_records import training_documents, validation_documents

app = typer.Typer(add_completion=False)
LAUNCHED = "GISTKV_DISTRIBUTED_WORKER"


def relaunch_distributed(num_processes: int) -> None:
    """Re-run this script as `num_processes` DDP workers, unless we already are one.

    On CUDA: `accelerate launch --multi_gpu` (FSDP/DeepSpeed come from an accelerate config).
    On CPU: torch's own elastic launcher (what accelerate wraps), because `accelerate launch
    --cpu` starts a single process unless MPI is set up. The marker variable stops a worker
    from launching again whatever the launcher exports.
    """
    if num_processes <= 1 or os.environ.get(LAUNCHED) or "LOCAL_RANK" in os.environ:
        return
    import torch

    if torch.cuda.is_available():
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
               str(num_processes), "--num_machines", "1", "--dynamo_backend", "no"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(num_processes)]
    env = dict(os.environ, **{LAUNCHED: "1"})
    raise SystemExit(subprocess.call(cmd + sys.argv, env=env))


def write_mask_picture(path: Path, num_gist: int, use_gist_mask: bool) -> None:
    """A readable picture: a short context, the gist block and a short query/answer."""
    example = {"context_ids": list(range(12)), "questions": [(list(range(5)), list(range(3)))]}
    batch = GistCollator(list(range(100, 100 + num_gist)), 0, use_gist_mask=use_gist_mask)([example])
    allowed = (batch["attention_mask"][0, 0] == 0).numpy()
    end_gist = 12 + num_gist
    plot_mask(allowed, [("context", 0, 12), ("gist", 12, end_gist), ("query", end_gist, end_gist + 5),
                        ("answer", end_gist + 5, end_gist + 8)], path)


@app.command()
def main(params: Path = Path("params.yaml"), base: Path = Path("models/base"), niah: Path = Path("data/niah"),
         out: Path = Path("models/gist"), checkpoints: Path = Path("models/gist_checkpoints"),
         metrics: Path = Path("metrics/train"),
         control: bool = typer.Option(False, "--control", help="plain-LoRA control: train without the gist mask"),
         stop_after_steps: int = typer.Option(None, hidden=True)) -> None:
    with stage_errors():
        train = load_section(params, "train", TrainParams)
        # The control: the same recipe and documents, no gist tokens, ordinary attention (no gist params).
        gist = GistParams(num_tokens=0) if control else load_section(params, "gist", GistParams)
        if control:
            train = dataclasses.replace(train, use_gist_mask=False, distill_from="", gist_view="all", gist_read="all")
        relaunch_distributed(train.num_processes)
        documents = training_documents(niah, train.langs, train.seed)
        held_out = validation_documents(niah, train.langs, train.validation_samples)
        if int(os.environ.get("RANK", "0")) != 0:      # other DDP ranks train along; rank 0 writes outputs
            with tempfile.TemporaryDirectory() as scratch:
                train_compressor(base, documents, held_out, gist, train, scratch, checkpoints, Path(scratch) / "live")
            return
        # the ladder's rungs first, each from the last; the run below then starts from the last rung (none: no-op)
        train, ladder = climb(base, rung_documents(niah, train.langs, train.seed), held_out, gist, train, checkpoints)
        with atomic_dir(out) as tmp_out:
            result = train_compressor(base, documents, held_out, gist, train, tmp_out, checkpoints, metrics / "live",
                                      stop_after_steps=stop_after_steps)
            if "stopped_at_step" in result:
                typer.echo(f"stopped after step {result['stopped_at_step']} (checkpoint kept for resume)")
                raise SystemExit(3)
        history = result.pop("history")
        if ladder:      # what the whole climb cost, the rungs included
            result.update(ladder=ladder, train_wall_s_with_ladder=round(
                result["train_wall_s"] + sum(rung["train_wall_s"] for rung in ladder), 1))
        write_json(metrics / "train.json", result)
        for key, name in (("loss", "loss.tsv"), ("eval_loss", "eval_loss.tsv"), ("val_accuracy", "val_accuracy.tsv"),
                          ("val_absent_declined", "val_absent_declined.tsv")):
            points = [(step, value) for step, value in curve(history, key) if value is not None]
            write_text(metrics / name, f"step\t{key}\n" + "".join(f"{step}\t{value:.5f}\n" for step, value in points))
        write_mask_picture(metrics / "gist_mask.png", gist.num_tokens, train.use_gist_mask)
        typer.echo(f"trained {gist.num_tokens} gist tokens ({', '.join(gist_token_strings(min(2, gist.num_tokens)))}, …): {result}")


if __name__ == "__main__":
    app()
