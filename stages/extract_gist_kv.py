"""Stage extract_gist_kv: compress every NIAH eval context into a gist KV safetensors file.

    python stages/extract_gist_kv.py          # data/gist_kv/niah_<lang>/<id>.safetensors + manifest.json
    dvc repro extract_gist_kv

The manifest (id -> file, bytes, context tokens) is deterministic; compress timings are
measurements and go to metrics/extract/ (summary and per context).
"""

import time
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.progress import track

from gistkv.compressor import load_compressor
from gistkv.io import atomic_dir, read_jsonl, write_json
from gistkv.kv import compress
from gistkv.methods import record_context_text
from gistkv.params import load_section
from gistkv.stage import stage_errors

app = typer.Typer(add_completion=False)


@dataclass
class ExtractParams:
    langs: list[str]


@app.command()
def main(params: Path = Path("params.yaml"), gist: Path = Path("models/gist"), niah: Path = Path("data/niah"),
         out: Path = Path("data/gist_kv"), metrics: Path = Path("metrics/extract/compress.json"),
         times: Path = Path("metrics/extract/compress_times.json")) -> None:
    with stage_errors():
        extract = load_section(params, "extract_gist_kv", ExtractParams)
        compressor = load_compressor(gist)
        timings, per_context_s = {}, {}
        with atomic_dir(out) as tmp:
            for lang in extract.langs:
                dataset = f"niah_{lang}"
                manifest, seconds = {}, []
                for record in track(read_jsonl(niah / lang / "eval.jsonl"), description=f"compress {dataset}"):
                    start = time.perf_counter()
                    # The evaluation's own context text; the file's source_sha256 covers exactly it.
                    gist_kv = compress(compressor, record_context_text(record))
                    seconds.append(time.perf_counter() - start)
                    path = tmp / dataset / f"{record['id']}.safetensors"
                    gist_kv.save(path)
                    manifest[record["id"]] = {"file": path.name, "bytes": path.stat().st_size,
                                              "context_tokens": gist_kv.context_tokens,
                                              "compress_s": round(seconds[-1], 4)}
                write_json(tmp / dataset / "manifest.json",
                           {key: {k: v for k, v in entry.items() if k != "compress_s"} for key, entry in manifest.items()})
                per_context_s[dataset] = {key: entry["compress_s"] for key, entry in manifest.items()}
                total_tokens = sum(entry["context_tokens"] for entry in manifest.values())
                timings[dataset] = {"contexts": len(manifest), "compress_s_total": round(sum(seconds), 3),
                                    "compress_tokens_per_s": round(total_tokens / sum(seconds), 1),
                                    "artifact_bytes_median": sorted(e["bytes"] for e in manifest.values())[len(manifest) // 2]}
        write_json(metrics, timings)
        write_json(times, per_context_s)
        typer.echo(f"gist KV written to {out}: {timings}")


if __name__ == "__main__":
    app()
