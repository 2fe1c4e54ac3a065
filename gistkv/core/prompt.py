"""The one prompt layout every method uses, so full / rag / gist differ only in what they read.

    context ids  = tokenize(context)
    query ids    = tokenize("\\n\\n" + question + "\\n" + answer_prefix)
    answer ids   = tokenize(" " + answer)

Pieces are tokenized separately and concatenated, so the gist path (context, then gist,
then query) and the full path (context, then query) see identical token ids.
"""

from __future__ import annotations

FREE_FORM_PREFIX = "Answer:"


def query_text(question: str, answer_prefix: str = FREE_FORM_PREFIX) -> str:
    return f"\n\n{question}\n{answer_prefix}"


def answer_text(answer: str) -> str:
    return f" {answer}"


def encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False).input_ids)
