"""The measuring commands of the CLI: the GPU smoke test and the benchmarks (merged into ``gistkv``'s commands).

    gistkv smoke-gpu --steps 10
    gistkv bench-kv --lengths 1024,2048
"""

from __future__ import annotations

from pathlib import Path

import typer

from gistkv.errors import GistkvError, fail

measuring = typer.Typer()


@measuring.command("smoke-gpu")
def smoke_gpu(base: Path = typer.Option(Path("models/base")), niah: Path = typer.Option(Path("data/niah")),
              params: Path = typer.Option(Path("params.yaml")), steps: int = typer.Option(10),
              device: str = typer.Option("cuda", help="cuda, or cpu to run the same path slowly"),
              variants: str = typer.Option("bfloat16,nf4", help="comma-separated: float32, bfloat16, nf4"),
              shape: str = typer.Option("base", help="base (the prepared model), or llama3-8b: that shape, random "
                                                      "weights, BASE's tokenizer (time and memory only)"),
              batch_size: int | None = typer.Option(None, min=1, help="train.batch_size for the steps (default: PARAMS')"),
              gradient_checkpointing: bool | None = typer.Option(None, help="train.gradient_checkpointing (default: PARAMS')"),
              ) -> None:
    """The paper-scale smoke test: STEPS training steps, compression and an answer per variant (and 2 processes
    when there are 2 GPUs); prints what it measured, with the peak GPU memory of training beside the plan's."""
    import torch

    from gistkv.tools.smoke import SHAPES, VARIANTS, smoke

    if device == "cuda" and not torch.cuda.is_available():
        fail(GistkvError("smoke-gpu: torch sees no CUDA device here; run it on a GPU machine (or --device cpu)."))
    if unknown := sorted(set(variants.split(",")) - set(VARIANTS)):
        fail(GistkvError(f"smoke-gpu --variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}."))
    if shape != "base" and shape not in SHAPES:
        fail(GistkvError(f"smoke-gpu --shape: unknown {shape}; choose from base, {', '.join(SHAPES)}."))
    overrides = {key: value for key, value in (("batch_size", batch_size),
                                                ("gradient_checkpointing", gradient_checkpointing)) if value is not None}
    typer.echo(f"torch {torch.__version__}, {torch.cuda.device_count()} CUDA device(s), {steps} steps per variant")
    for row in smoke(base, niah, params, steps, device, variants.split(","), SHAPES.get(shape), overrides):
        typer.echo("  ".join(f"{key}={value}" for key, value in row.items()))


@measuring.command("bench-load")
def bench_load(base: Path = typer.Option(Path("models/base")), repeats: int = 3) -> None:
    """Print how long loading the prepared base model takes (seconds, each repeat)."""
    from gistkv.tools.bench import time_load

    seconds = time_load(base, repeats)
    typer.echo(f"load {base}: " + ", ".join(f"{s:.2f} s" for s in seconds) + f" (best {min(seconds):.2f} s)")


@measuring.command("bench-kv")
def bench_kv(model: Path = typer.Option(Path("models/gist")), lengths: str = "1024,2048,4096", repeats: int = 3,
             workdir: Path = typer.Option(Path("/tmp"))) -> None:
    """Artifact bytes vs full KV bytes, compress tokens/s, and TTFT of `ask` from a file vs full context."""
    import torch

    from gistkv.tools.bench import kv_benchmark
    from gistkv.core.compressor import load_compressor

    compressor = load_compressor(model)
    typer.echo(f"threads={torch.get_num_threads()} device={compressor.device} gist_tokens={len(compressor.gist_ids)}")
    for row in kv_benchmark(compressor, [int(x) for x in lengths.split(",")], repeats, workdir):
        typer.echo("  ".join(f"{key}={value}" for key, value in row.items()))


@measuring.command("bench-onset")
def bench_onset(seeds: str = "46,47,48", steps: int = 400, params: Path = Path("params.yaml"),
                base: Path = Path("models/base"), niah: Path = Path("data/niah"),
                workdir: Path = typer.Option(Path("/tmp"))) -> None:
    """First STEPS training steps per seed: the loss over the plateau window at steps 200, 300, ... (~5 min a seed)."""
    from gistkv.tools.bench import onset

    try:
        for row in onset(base, niah, params, [int(seed) for seed in seeds.split(",")], steps, workdir):
            typer.echo("  ".join(f"{key}={value}" for key, value in row.items()))
    except GistkvError as err:
        fail(err)


@measuring.command("bench-step")
def bench_step(lengths: str = "128,512,1024,2048", steps: int = 5, params: Path = Path("params.yaml"),
               base: Path = Path("models/base"), niah: Path = Path("data/niah")) -> None:
    """Median seconds of one training step at each context length (the recipe in PARAMS, its train records)."""
    import torch

    from gistkv.tools.bench import step_seconds

    typer.echo(f"threads={torch.get_num_threads()}")
    try:
        for row in step_seconds(base, niah, params, [int(length) for length in lengths.split(",")], steps):
            typer.echo("  ".join(f"{key}={value}" for key, value in row.items()))
    except GistkvError as err:
        fail(err)
