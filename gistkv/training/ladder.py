"""The ladder: easier training sets trained before the main one, each rung starting from the last one's adapter.

A cold start on the whole task can stay on the loss plateau (docs/experiments.md); copying one fact out of short
documents leaves it within a few hundred steps, and a run warm-started from that copy (``train.init_from``) goes
on from there. ``niah.ladder`` says what each rung's documents hold (the ``niah.train`` keys it changes; make_niah
writes them to data/niah/<lang>/ladder.jsonl) and ``train.ladder`` how each rung trains (the ``train`` keys it
changes). Rung k's compressor and checkpoints live in ``<checkpoints>/ladder/rung<k>/``, so a re-run resumes a
rung or skips one that finished; the main run then starts from the last rung.

    # params.yaml
    niah:  {ladder: [{context_lengths: [128], samples_per_length: [500], max_facts: 1, max_distractors: 0,
                      absent_fraction: 0.0}]}
    train: {ladder: [{max_steps: 600, lr_scheduler_kwargs: {num_decay_steps: 200}}]}
    dvc repro train_gist        # rung 1 on ladder.jsonl, then train.jsonl from rung 1's adapter
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from gistkv.data.needles import LADDER
from gistkv.errors import GistkvError
from gistkv.io import atomic_dir
from gistkv.training.checkpoints import LADDER_DIR
from gistkv.training.train_config import GistParams, TrainParams
from gistkv.training.train_records import split_documents


def rung_documents(niah_dir: str | Path, langs: list[str], seed: int) -> list[list[dict]]:
    """Each rung's training documents (rung 1 first), the languages mixed in the seed's order; none where make_niah
    wrote no ladder.jsonl (data made before the ladder existed)."""
    written = [lang for lang in langs if (Path(niah_dir) / lang / f"{LADDER}.jsonl").exists()]
    rungs: dict[int, list[dict]] = {}
    for document in split_documents(niah_dir, written, LADDER):
        rungs.setdefault(document["rung"], []).append(document)
    for documents in rungs.values():
        random.Random(seed).shuffle(documents)
    return [rungs[rung] for rung in sorted(rungs)]


def climb(base_dir: str | Path, rungs: list[list[dict]], validation_documents: list[dict], gist: GistParams,
          params: TrainParams, checkpoint_dir: str | Path) -> tuple[TrainParams, list[dict]]:
    """Train every rung in turn; returns the main run's params (``init_from``: the last rung's compressor; unchanged
    without a ladder) and a record per rung for train.json."""
    from gistkv.training.train import curve, release_memory, train_compressor

    if len(rungs) != len(params.ladder):
        raise GistkvError(f"train.ladder: {len(params.ladder)} rung(s), but {LADDER}.jsonl holds {len(rungs)} "
                          "(make_niah writes niah.ladder's); give one entry per rung ({} trains a rung with train's "
                          "keys).")
    init_from, records = params.init_from, []
    for index, documents in enumerate(rungs):
        folder = Path(checkpoint_dir) / LADDER_DIR / f"rung{index + 1}"
        rung = dataclasses.replace(params.rung(index), init_from=init_from)
        with atomic_dir(folder / "compressor") as compressor_dir:     # a rung killed while saving leaves no half
            result = train_compressor(base_dir, documents, validation_documents, gist, rung, compressor_dir,
                                      folder / "checkpoints", folder / "live")
        release_memory()    # the trainer holds its model in a reference cycle: free it before the next rung loads
        accuracy = [value for _, value in curve(result["history"], "val_accuracy") if value is not None]
        records.append({"rung": index + 1, "documents": len(documents), "steps": result["steps"],
                        "seed": result["seed"], "resumed_from": result["resumed_from"],
                        "train_loss": result["train_loss"], "eval_loss_initial": result["eval_loss_initial"],
                        "eval_loss_final": result["eval_loss_final"],
                        "val_accuracy_final": accuracy[-1] if accuracy else None,
                        "train_wall_s": result["train_wall_s"],
                        "train_wall_s_without_checks": result["train_wall_s_without_checks"]})
        init_from = str(folder / "compressor")
    return dataclasses.replace(params, init_from=init_from), records
