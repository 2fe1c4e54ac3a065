"""The one prompt layout every method uses, so full / rag / gist differ only in what they read.

    context ids  = head + tokenize(context)
    query ids    = tokenize("\\n\\n" + question + "\\n" + answer_prefix) + tail
    answer ids   = tokenize(" " + answer)

Pieces are tokenized separately and concatenated, so the gist path (context, then gist, then query) and the
full path (context, then query) see identical token ids. ``head`` and ``tail`` are a property of the model
card (``models/base/gistkv_base.json``), the same in training, compression and answering:

* plain (``model.chat_template: false``): head is BOS when the tokenizer starts every text with it
  (Llama-3's ``<|begin_of_text|>``; SmolLM2's adds none), tail is empty;
* chat (``model.chat_template: true``, for instruct models): the document and the query are one user turn of
  the tokenizer's chat template; head opens that turn (system prompt and BOS included, as the template
  writes them), tail closes it and opens the assistant's turn, which the answer fills. A task's own query
  (RULER, LongBench), answer prefix included, is the user's text as it stands.

    from gistkv.core.prompt import prompt_layout
    layout = prompt_layout(tokenizer, chat_template=True)
    ids = layout.document_ids("The pass key is 48213.") + layout.query_ids(query_text("What is the pass key?"))
"""

from __future__ import annotations

from dataclasses import dataclass

from gistkv.errors import GistkvError

FREE_FORM_PREFIX = "Answer:"
# Stand-ins rendered through the chat template, then cut out: what surrounds them is head and tail.
_DOCUMENT, _QUERY = "\x00gistkv-document\x00", "\x00gistkv-query\x00"


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


@dataclass(frozen=True)
class PromptLayout:
    """What surrounds a read's document and query for one model card (see the module docstring)."""
    tokenizer: object
    head_ids: tuple[int, ...] = ()
    tail_ids: tuple[int, ...] = ()
    chat_template: bool = False

    def document_ids(self, text: str) -> list[int]:
        """The ids a read of ``text`` starts from: the head, then the text."""
        return [*self.head_ids, *encode(self.tokenizer, text)]

    def query_ids(self, query: str) -> list[int]:
        """The ids after the context (and the gist): the query, then the tail."""
        return [*encode(self.tokenizer, query), *self.tail_ids]


def prompt_layout(tokenizer, chat_template: bool = False) -> PromptLayout:
    bos = [tokenizer.bos_token_id] if adds_bos(tokenizer) else []
    if not chat_template:
        return PromptLayout(tokenizer, tuple(bos))
    if not getattr(tokenizer, "chat_template", None):
        raise GistkvError(f"model.chat_template: true, but the tokenizer of {tokenizer.name_or_path or 'the base'} "
                          "has no chat template; set model.chat_template: false (a plain prompt).")
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": _DOCUMENT + _QUERY}],
                                             add_generation_prompt=True, tokenize=False)
    head, _, rest = rendered.partition(_DOCUMENT)
    between, _, tail = rest.partition(_QUERY)
    if between or not rest:
        raise GistkvError("model.chat_template: the tokenizer's chat template does not keep a user message whole; "
                          "set model.chat_template: false (a plain prompt).")
    head_ids = encode(tokenizer, head)
    if bos and head_ids[:1] != bos:     # a template that leaves BOS to the tokenizer
        head_ids = bos + head_ids
    return PromptLayout(tokenizer, tuple(head_ids), tuple(encode(tokenizer, tail)), True)

