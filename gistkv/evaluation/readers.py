"""The models that read documents and answer in an evaluation: ``base``, ``tuned`` and ``gist``.

* ``base``   the untuned base model (``models/base``)
* ``tuned``  the plain-LoRA control (``models/lora``): trained on the same documents and questions,
             no gist tokens, the context read by the base weights as in training
* ``gist``   the gist compressor (``models/gist``)

All three read a document with the same base weights and the same precision, so an evaluation reads
each document once for all of them (``gistkv.evaluation.methods.SharedRead``); a pair that would read differently
is refused rather than compared on unequal reads.

    readers = load_readers(Path("models/base"), Path("models/gist"), Path("models/lora"), {"base", "gist"})
"""

from __future__ import annotations

from pathlib import Path

from gistkv.core.compressor import Compressor, ContextRead, load_compressor, untrained_compressor
from gistkv.core.model import load_base
from gistkv.errors import GistkvError

READERS = ("base", "tuned", "gist")


def base_reader(base_dir: Path, autocast: str = "none") -> Compressor:
    loaded = load_base(base_dir)
    reader = untrained_compressor(loaded.model, loaded.tokenizer, 0, loaded.info["device"], ContextRead("base", autocast),
                                  chat_template=loaded.info["chat_template"])
    reader.meta.update(base_model=loaded.info["model_id"], base_weights_sha256=loaded.info["weights_sha256"])
    return reader


def load_readers(base_dir: Path, gist_dir: Path, tuned_dir: Path, wanted: set[str]) -> dict[str, Compressor]:
    unknown = sorted(wanted - set(READERS))
    if unknown:
        raise GistkvError(f"evaluate.readers: unknown reader {unknown[0]!r} (known: {', '.join(READERS)}).")
    readers: dict[str, Compressor] = {}
    if "gist" in wanted:
        readers["gist"] = load_compressor(gist_dir)
    if "tuned" in wanted:
        readers["tuned"] = load_compressor(tuned_dir, gist_mask=False)
    reads = {name: reader.context_read for name, reader in readers.items()}
    for name, read in reads.items():
        if read.encoder != "base":
            raise GistkvError(f"{gist_dir if name == 'gist' else tuned_dir}: context_encoder {read.encoder!r}; the "
                              "evaluation compares readers on one base-model read of each document (train.context_encoder: base).")
    if len({read.autocast for read in reads.values()}) > 1:
        raise GistkvError(f"{gist_dir} and {tuned_dir} read contexts in different precisions ({reads}); train both "
                          "with the same train.context_autocast.")
    autocast = next(iter(reads.values())).autocast if reads else "none"
    readers["base"] = base_reader(base_dir, autocast)
    # One read of each document serves every reader, so all must lay prompts out alike (chat template or not).
    layout = readers["base"].layout
    for name, reader in readers.items():
        if (reader.layout.chat_template, reader.layout.record()) != (layout.chat_template, layout.record()):
            raise GistkvError(f"{gist_dir if name == 'gist' else tuned_dir}: trained with chat_template "
                              f"{reader.layout.chat_template}, but {base_dir} lays reads out with "
                              f"{layout.chat_template}; evaluate with the base it was trained on (or retrain).")
    return readers
