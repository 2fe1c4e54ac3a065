"""The one prompt layout every method uses, so full / rag / gist differ only in what they read.

    context ids  = [BOS, if the tokenizer adds one] + tokenize(context)
    query ids    = tokenize("\\n\\n" + question + "\\n" + answer_prefix)
    answer ids   = tokenize(" " + answer)

Pieces are tokenized separately and concatenated, so the gist path (context, then gist,
then query) and the full path (context, then query) see identical token ids. BOS is a property of the
model card: a tokenizer that starts every text with it (Llama-3's ``<|begin_of_text|>``) gets it at the
start of every read, in training, compression and answering alike; SmolLM2's does not, so none is added.
"""

from __future__ import annotations

FREE_FORM_PREFIX = "Answer:"


def query_text(question: str, answer_prefix: str = FREE_FORM_PREFIX) -> str:
    return f"\n\n{question}\n{answer_prefix}"


def answer_text(answer: str) -> str:
    return f" {answer}"


def encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False).input_ids)


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer starts a text with its BOS token when left to its defaults."""
    bos = tokenizer.bos_token_id
    return bos is not None and list(tokenizer("a").input_ids[:1]) == [bos]


def document_ids(tokenizer, text: str) -> list[int]:
    """The ids a read of ``text`` starts from: BOS when the tokenizer adds one, then the text."""
    return ([tokenizer.bos_token_id] if adds_bos(tokenizer) else []) + encode(tokenizer, text)
