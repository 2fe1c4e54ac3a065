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
  writes them), tail closes it and opens the assistant's turn, which the answer fills and ends as the template
  ends that turn. A task's own query (RULER, LongBench), answer prefix included, is the user's text as it
  stands (RULER's own chat runs put the answer prefix after the assistant's header instead), and the data
  stages' length targets count the text without the template's wrapping (tens of tokens).

    from gistkv.core.prompt import prompt_layout
    layout = prompt_layout(tokenizer, chat_template=True)
    ids = layout.document_ids("The pass key is 48213.") + layout.query_ids(query_text("What is the pass key?"))
"""

from __future__ import annotations

from dataclasses import dataclass

from gistkv.errors import GistkvError

FREE_FORM_PREFIX = "Answer:"
# Stand-ins rendered through the chat template, then cut out: what surrounds them is head and tail.
_DOCUMENT, _QUERY, _ANSWER = "\x00gistkv-document\x00", "\x00gistkv-query\x00", "\x00gistkv-answer\x00"
# Templates that write today's date into the system prompt (Llama-3.1's) read this one instead, so the head is
# the same on every day (the date is Llama-3.1's own fallback).
_TEMPLATE_KWARGS = {"date_string": "26 Jul 2024"}


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
    end_ids: tuple[int, ...] = ()       # what ends an answer: EOS, or the template's end of the assistant's turn
    chat_template: bool = False

    def record(self) -> dict:
        """What compressor.json keeps, so a later read is checked against training's ids, not only a flag
        (a tokenizer file or template changed since fails the check)."""
        return {"head_ids": list(self.head_ids), "tail_ids": list(self.tail_ids), "end_ids": list(self.end_ids)}

    def document_ids(self, text: str) -> list[int]:
        """The ids a read of ``text`` starts from: the head, then the text."""
        return [*self.head_ids, *encode(self.tokenizer, text)]

    def query_ids(self, query: str) -> list[int]:
        """The ids after the context (and the gist): the query, then the tail."""
        return [*encode(self.tokenizer, query), *self.tail_ids]


def prompt_layout(tokenizer, chat_template: bool = False, source: str = "") -> PromptLayout:
    """The layout of ``tokenizer``'s model card; ``source`` names the model in errors."""
    bos = [tokenizer.bos_token_id] if adds_bos(tokenizer) else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if not chat_template:
        return PromptLayout(tokenizer, tuple(bos), (), tuple(eos))
    where = f"model.chat_template: true, but the tokenizer of {source or tokenizer.name_or_path or 'the base model'}"
    if not getattr(tokenizer, "chat_template", None):
        raise GistkvError(f"{where} has no chat template; set model.chat_template: false (a plain prompt).")
    asked = [{"role": "user", "content": _DOCUMENT + _QUERY}]
    try:
        rendered = tokenizer.apply_chat_template(asked, add_generation_prompt=True, tokenize=False, **_TEMPLATE_KWARGS)
        answered = tokenizer.apply_chat_template(asked + [{"role": "assistant", "content": _ANSWER}], tokenize=False,
                                                 **_TEMPLATE_KWARGS)
    except Exception as err:        # jinja's TemplateError, or a template's own raise_exception
        raise GistkvError(f"{where} fails to render one user turn ({type(err).__name__}: {err}); "
                          "set model.chat_template: false (a plain prompt).") from None
    head, _, rest = rendered.partition(_DOCUMENT)
    between, _, tail = rest.partition(_QUERY)
    turn_end = answered.partition(_ANSWER)[2].strip()
    if between or not rest or _ANSWER not in answered or not turn_end:
        raise GistkvError(f"{where} does not keep a user message whole or end the assistant's turn; "
                          "set model.chat_template: false (a plain prompt).")
    head_ids = encode(tokenizer, head)
    if bos and head_ids[:1] != bos:     # a template that leaves BOS to the tokenizer
        head_ids = bos + head_ids
    # Answers end as the template ends the assistant's turn (Llama-3's <|eot_id|>, Gemma's <end_of_turn>), which
    # need not be the tokenizer's EOS: training teaches that ending and decoding stops at its first token.
    return PromptLayout(tokenizer, tuple(head_ids), tuple(encode(tokenizer, tail)), tuple(encode(tokenizer, turn_end)),
                        True)

