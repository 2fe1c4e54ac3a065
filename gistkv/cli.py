"""gistkv command line: check the machine, compress a document, ask it questions, inspect a file.

    gistkv doctor
    gistkv compress DOC.txt -o doc.gist.safetensors --model models/gist
    gistkv ask doc.gist.safetensors "What is the pass key?" --model models/gist
    gistkv inspect doc.gist.safetensors
    gistkv near-misses data/eval/gist/niah_test_en.jsonl --method gist
    gistkv headline --write
    gistkv smoke-gpu                     # on a CUDA machine: the paper-scale profile's smoke test
    gistkv bench-onset --seeds 46,47,48
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import typer

from gistkv.errors import GistkvError, fail
from gistkv.stage import keep_hub_offline
from gistkv.tools.commands import measuring

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])
app.add_typer(measuring)      # smoke-gpu and bench-*, as top-level commands

keep_hub_offline()
# peft asks transformers a deprecated question on every load; the user cannot act on the warning.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# The default flag for `gistkv ask`: answers whose least likely token is below this are called guesses.
LOW_CONFIDENCE = 0.5
# `gistkv ask` declines a question no passage of the document is this close to: params.yaml's
# evaluate.gate.min_similarity, chosen on dev (a test keeps the two equal).
MIN_PRESENCE = 0.36


@app.command()
def doctor(base: Path = typer.Option(Path("models/base"), help="prepared base model folder"),
           plan: bool = typer.Option(False, help="estimate a training process's memory for PARAMS on this device"),
           params: Path = typer.Option(Path("params.yaml")),
           config: Path = typer.Option(None, help="a model's config.json (default: the base model's)")) -> None:
    """Print what this machine offers: python, torch/CUDA, bitsandbytes, library versions, base model, memory plan."""
    import json

    from gistkv.tools.doctor import device_memory_gib, memory_plan, report
    from gistkv.params import read_params

    for name, value in report(base):
        typer.echo(f"{name:>22}: {value}")
    if not plan:
        return
    try:
        settings = read_params(params)
        from gistkv.core.model import model_location

        config_path = config or Path(model_location(base)) / "config.json"
        if not config_path.exists():
            raise GistkvError(f"{config_path}: no config.json; pass --config with the model's config.json.")
        model_config = json.loads(config_path.read_text(encoding="utf-8"))
        longest = max(settings["niah"]["train"]["context_lengths"])
        rows = memory_plan(model_config, settings["model"], settings["train"], settings["gist"]["num_tokens"], longest)
    except (GistkvError, KeyError) as err:
        fail(err if isinstance(err, GistkvError) else GistkvError(f"{params}: key {err} missing for the plan."))
    where, total = device_memory_gib()
    typer.echo(f"{'memory plan':>22}: {params} on {where} ({total:,.1f} GiB)")
    for name, gib in rows:
        typer.echo(f"{name:>40}: {gib:8.2f} GiB")
    fits = rows[-1][1] <= total * 0.9
    typer.echo(f"{'verdict':>40}: {'fits' if fits else 'does NOT fit'} in {total:,.1f} GiB (estimate; leave ~10 % slack)")


@app.command()
def compress(document: Path, output: Path = typer.Option(..., "-o", "--output"),
             model: Path = typer.Option(Path("models/gist"), help="trained compressor folder"),
             index: bool = typer.Option(True, help="also store the passage index `ask` checks before answering "
                                                   "(int8 sentence vectors, ~0.5 KB per passage)")) -> None:
    """Compress a UTF-8 text file into a gist KV .safetensors file (with a passage index, unless --no-index)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from gistkv.core.compressor import load_compressor
    from gistkv.core.kv import compress as compress_text

    try:
        if not document.exists():
            raise GistkvError(f"{document}: file not found.")
        try:
            text = document.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise GistkvError(f"{document}: not UTF-8 text.") from None
        if not text.strip():
            raise GistkvError(f"{document}: the document is empty; there is nothing to compress.")
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as progress:
            progress.add_task("loading compressor", total=None)
            compressor = load_compressor(model)
            progress.add_task(f"compressing {document.name}", total=None)
            gist_kv = compress_text(compressor, text,
                                    warn=lambda line: typer.secho(f"warning: {document}: {line}", fg="yellow", err=True))
            if index:
                from gistkv.core.presence import PresenceIndex, load_embedder
                from gistkv.core.routing import token_of_chars

                progress.add_task("indexing passages", total=None)
                passage_index = PresenceIndex.build(text, load_embedder(),
                                                    lambda chars: token_of_chars(compressor.layout, text, chars))
                passage_index.attach(gist_kv)
        gist_kv.save(output)
    except GistkvError as err:
        fail(err)
    passages = f" + {passage_index.vectors.shape[0]} passages indexed ({passage_index.nbytes:,} bytes)" if index else ""
    typer.echo(f"{output}: {output.stat().st_size:,} bytes, {gist_kv.metadata['context_tokens']} context tokens "
               f"-> {gist_kv.num_gist} gist tokens{passages}")


@app.command()
def ask(artifact: Path, question: str, model: Path = typer.Option(Path("models/gist")),
        max_new_tokens: int = typer.Option(32),
        min_confidence: float = typer.Option(LOW_CONFIDENCE, help="below this, the answer is flagged as a guess"),
        min_presence: float = typer.Option(MIN_PRESENCE, min=-1.0, max=1.0,
                                           help="decline when no passage of the document is this similar to the "
                                                "question (a cosine; -1: always ask the gist)")) -> None:
    """Answer a free-form question from a gist file (streams the answer, then how sure the model was).

    First the passage index stored with the gist (``compress`` makes it) is checked: when no passage of
    the document is about the question, it answers "The document does not say." without asking the gist,
    which would otherwise give the number it holds. Then the gist answers; the confidence is the
    probability of the least likely token of the answer.
    """
    from gistkv.core.compressor import load_compressor
    from gistkv.core.kv import GistKV, answer_ids
    from gistkv.core.presence import PresenceIndex, load_embedder, passes, question_language
    from gistkv.core.prompt import query_text
    from gistkv.core.routing import routed_gist
    from gistkv.data.needles import decline_answer

    try:
        if not any(character.isalnum() for character in question):
            raise GistkvError("the question has no words; ask something, e.g. \"What is the pass key?\".")
        compressor = load_compressor(model)
        gist_kv = GistKV.load(artifact, compressor)
        passage_index = PresenceIndex.of(gist_kv, artifact)
        if passage_index is None:
            typer.secho(f"[{artifact} has no passage index (compressed with --no-index, or by a gistkv older than the "
                        "index): the gist answers every question, even one the document says nothing about; "
                        "compress it again for the check]", err=True, fg="yellow")
        # a routed compressor embeds the question to pick its gist group, even with the check off
        embed = load_embedder() if passage_index is not None and (min_presence > -1 or compressor.gist_read == "routed") \
            else None
        checked = passage_index is not None and min_presence > -1     # -1: the user turned the check off
        if checked:
            similarity, passed = passes(passage_index, question, embed, min_presence)
            if not passed:
                typer.echo(decline_answer(question_language(question)))
                typer.secho(f"[declined: the closest passage of the document has similarity {similarity:.2f} < "
                            f"{min_presence:.2f} (--min-presence); the gist was not asked]", err=True, fg="yellow")
                return
        whole = gist_kv.num_gist
        gist_kv, group = routed_gist(compressor, gist_kv, question, embed, passage_index, artifact)
        tokenizer = compressor.tokenizer
        shown: list[int] = []
        printed = ""

        def stream(token_id: int) -> None:
            nonlocal printed
            if token_id in compressor.stop_ids:
                return
            shown.append(token_id)
            text = tokenizer.decode(shown, skip_special_tokens=True)
            typer.echo(text[len(printed):], nl=False)
            printed = text

        decoded = answer_ids(compressor, gist_kv, compressor.layout.query_ids(query_text(question)),
                             max_new_tokens=max_new_tokens, on_token=stream)
        typer.echo()
        confidence = decoded.min_token_prob
        verdict = "low: treat it as a guess" if confidence < min_confidence else "ok"
        found = f"closest passage {similarity:.2f}; " if checked else ""
        read = f"{gist_kv.num_gist} gist tokens" if group is None else \
            f"{gist_kv.num_gist} of {whole} gist tokens (group {group}, by the closest passage)"
        typer.secho(f"[confidence {confidence:.2f} ({verdict}); {found}answered from {read} of "
                    f"a {gist_kv.context_tokens:,}-token document]", err=True, fg="yellow" if confidence < min_confidence else None)
    except GistkvError as err:
        fail(err)


@app.command()
def inspect(artifact: Path) -> None:
    """Show a gist file's metadata, size, and its ratio to the full KV cache it replaces."""
    from gistkv.core.kv import GistKV
    from gistkv.core.presence import PresenceIndex

    try:
        gist_kv = GistKV.load(artifact)
        index = PresenceIndex.of(gist_kv, artifact)
    except GistkvError as err:
        fail(err)
    meta = gist_kv.metadata
    for key in sorted(meta):
        typer.echo(f"{key:>22}: {meta[key]}")
    per_token = gist_kv.nbytes // gist_kv.num_gist
    full = per_token * gist_kv.context_tokens
    typer.echo(f"{'file bytes':>22}: {artifact.stat().st_size:,}")
    typer.echo(f"{'passage index':>22}: " + (f"{index.vectors.shape[0]} passages, {index.nbytes:,} bytes"
                                             if index is not None else "none (ask cannot decline)"))
    typer.echo(f"{'full KV it replaces':>22}: {full:,} bytes ({gist_kv.context_tokens} tokens) -> "
               f"{full / max(gist_kv.nbytes, 1):,.1f}x smaller (the gist's KV; "
               f"{full / max(artifact.stat().st_size, 1):,.1f}x the whole file)")


@app.command("near-misses")
def near_misses(predictions: list[Path], method: str = typer.Option("gist", help="the method whose answers to read")) -> None:
    """Where one method's wrong answers (facts in the document) go wrong, digit by digit, in evaluate's rows."""
    from gistkv.io import read_jsonl
    from gistkv.reporting.near_misses import present_near_misses

    for path in predictions:
        try:
            rows = read_jsonl(path)
        except GistkvError as err:
            fail(err)
        found = present_near_misses(rows, method)
        positions = " ".join(f"{position}:{count}" for position, count in found["by_position"].items())
        typer.echo(f"{path} {method}: {found['answers']} answers, {found['wrong']} wrong, {found['near_misses']} near "
                   f"misses, {found['one_digit_off']} one digit off; wrong digits by position {positions or '-'}")


@app.command()
def headline(metrics: Path = typer.Option(Path("metrics")), readme: Path = typer.Option(Path("README.md")),
             write: bool = typer.Option(False, help="put the table into README.md between its markers")) -> None:
    """The README's headline table from metrics/ (the test split, every method)."""
    from gistkv.reporting.headline import headline_table, with_headline
    from gistkv.io import write_text

    table = headline_table(metrics)
    if not write:
        typer.echo(table)
        return
    try:
        write_text(readme, with_headline(readme.read_text(encoding="utf-8"), table))
    except GistkvError as err:
        fail(err)
    typer.echo(f"{readme}: headline table updated")
