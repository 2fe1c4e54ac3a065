"""Stage make_niah: English / Korean needle-in-a-haystack documents (train, dev, test) from packaged prose.

    python stages/make_niah.py --lang en     # writes data/niah/en/{train,dev,test,ladder}.jsonl and card.json
    dvc repro make_niah@ko

ladder.jsonl holds the training documents of niah.ladder's rungs (empty without a ladder).
"""

from pathlib import Path

import typer

from gistkv.core.model import load_tokenizer
from gistkv.data.needles import LADDER, SPLITS
from gistkv.data.niah import data_card, generate, generate_ladder, language
from gistkv.data.niah_params import NiahParams
from gistkv.io import atomic_dir, write_json, write_jsonl
from gistkv.params import load_section
from gistkv.stage import stage_errors

app = typer.Typer(add_completion=False)


@app.command()
def main(lang: str = typer.Option(..., help="language key under niah.languages (en, ko)"),
         params: Path = Path("params.yaml"), base: Path = Path("models/base"),
         out_root: Path = Path("data/niah")) -> None:
    with stage_errors():
        niah_params = load_section(params, "niah", NiahParams)
        language(niah_params, lang)
        tokenizer, max_positions = load_tokenizer(base)
        splits = {split: generate(niah_params, lang, split, tokenizer, max_positions) for split in SPLITS}
        ladder = generate_ladder(niah_params, lang, tokenizer, max_positions)
        with atomic_dir(out_root / lang) as tmp:
            counts = {split: write_jsonl(tmp / f"{split}.jsonl", records) for split, records in splits.items()}
            write_jsonl(tmp / f"{LADDER}.jsonl", ladder)
            if ladder:
                counts["ladder"] = [sum(document["rung"] == rung for document in ladder)
                                    for rung in range(1, len(niah_params.ladder) + 1)]
            write_json(tmp / "card.json", data_card(niah_params, lang, counts, tokenizer.name_or_path))
        typer.echo(f"niah {lang}: {counts}")


if __name__ == "__main__":
    app()
