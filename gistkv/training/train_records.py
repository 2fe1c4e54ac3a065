"""Training and held-out examples: a NIAH document's context and each of its questions, as token ids.

Every question of a document becomes one ``[query][answer]`` block after the context (and the gist
tokens), so a document read once trains all the questions asked about it. The query is the free-form
layout ``gistkv ask`` uses (``gistkv.core.prompt``), so what the CLI asks is what training taught.

    from gistkv.core.model import load_tokenizer
    from gistkv.core.prompt import prompt_layout
    from gistkv.training.train_records import training_documents, tokenize_documents
    tokenizer, _ = load_tokenizer("models/base")      # (with model.chat_template: true, prompt_layout(tokenizer, True))
    examples = tokenize_documents(training_documents("data/niah", ["en", "ko"], seed=42), prompt_layout(tokenizer))
"""

from __future__ import annotations

import random
from pathlib import Path

from gistkv.core.prompt import PromptLayout, answer_text, encode, query_text
from gistkv.errors import GistkvError
from gistkv.io import read_jsonl
from gistkv.training.routes import question_groups


def tokenize_documents(documents: list[dict], layout: PromptLayout, routed_groups: int | None = None) -> list[dict]:
    """``{context_ids, questions: [(query_ids, answer_ids + end), ...]}`` per document, laid out as ``layout``
    (the model card's: ``LoadedModel.layout``) says; ``end`` is EOS, or the chat template's end of turn. With
    ``routed_groups`` G (``train.gist_read: routed``), ``reads`` adds the gist group each question reads."""
    tokenizer = layout.tokenizer
    return [{"context_ids": layout.document_ids(document["context"]),
             "questions": [(layout.query_ids(query_text(question["question"])),
                            encode(tokenizer, answer_text(question["answer"])) + list(layout.end_ids))
                           for question in document["questions"]],
             **({"reads": question_groups(document, layout, routed_groups)} if routed_groups else {})}
            for document in documents]


def split_documents(niah_dir: str | Path, langs: list[str], split: str) -> list[dict]:
    return [document for lang in langs for document in read_jsonl(Path(niah_dir) / lang / f"{split}.jsonl")]


def training_documents(niah_dir: str | Path, langs: list[str], seed: int) -> list[dict]:
    """The train splits of ``langs``, mixed in the seed's order (the curriculum then sorts them by length)."""
    documents = split_documents(niah_dir, langs, "train")
    random.Random(seed).shuffle(documents)
    return documents


def documents_read(documents: list[dict], max_steps: int, per_step: int, curriculum: bool) -> tuple[int, int]:
    """How many training documents a run of ``max_steps`` reads (``per_step`` per step: batch x accumulation x
    processes, one pass at most), and the longest context among them. With ``curriculum`` (one length-sorted pass)
    those are the shortest: a run that stops early never reads the longest documents; shuffled, any may be read.

        >>> docs = [{"context_tokens": n} for n in (512, 1024, 512, 1024)]
        >>> documents_read(docs, 2, 1, True), documents_read(docs, 2, 1, False), documents_read(docs, 9, 1, True)
        ((2, 512), (2, 1024), (4, 1024))
    """
    count = min(len(documents), max_steps * per_step)
    lengths = sorted(document["context_tokens"] for document in documents)
    return count, lengths[count - 1] if curriculum else lengths[-1]


def validation_documents(niah_dir: str | Path, langs: list[str], count: int) -> list[dict]:
    """The first ``count`` dev documents, taken from the languages in turn: the held-out checks of a training
    run measure the dev families and texts, never the test split."""
    per_lang = [split_documents(niah_dir, [lang], "dev") for lang in langs]
    mixed = [document for row in zip(*per_lang) for document in row]
    if len(mixed) < count:
        raise GistkvError(f"train.validation_samples: {count} wanted, but the dev splits of {langs} hold "
                          f"{len(mixed)} documents in turn; raise niah.dev.samples_per_length.")
    return mixed[:count]
