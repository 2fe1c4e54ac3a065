"""Which gist group a training question reads under ``train.gist_read: routed``: the group whose chunk of the
context holds its answer's key, so the answer learns to read one group's tokens, as a read routed by the passage
index does at inference (docs/probes/routed_read.py). A question whose answer is absent reads a group drawn from
its own text, so declining is taught on one group too; a recital or kind question, whose answer spans the whole
document, reads every group (-1). The run's held-out checks read the same way (``KeyRoutedGist``).

    from gistkv.training.routes import question_groups
    question_groups(document, layout, groups=3)      # e.g. [2, 0]: one group per question, in order
"""

from __future__ import annotations

import dataclasses
import zlib

from gistkv.core.decode import Decoded
from gistkv.core.gist import group_of_position, view_groups
from gistkv.core.prompt import PromptLayout
from gistkv.core.routing import token_of_chars
from gistkv.errors import GistkvError
from gistkv.evaluation.methods import Gist, Prepared, context_text


def key_end_token(document: dict, fact: dict, layout: PromptLayout) -> int:
    """The context token (as ``layout.document_ids`` numbers them) holding the end of the fact's key."""
    start = document["context"].find(fact["needle"])
    offset = fact["needle"].find(fact["key"])
    if start < 0 or offset < 0:
        raise GistkvError(f"document {document.get('id', '?')}: the needle {fact['needle']!r} or its key is not in "
                          "the context; regenerate the NIAH data (dvc repro make_niah).")
    return token_of_chars(layout, document["context"], [start + offset + len(fact["key"]) - 1])[0]


def question_groups(document: dict, layout: PromptLayout, groups: int) -> list[int]:
    """The gist group each of the document's questions reads (see the module docstring)."""
    context_len = len(layout.document_ids(document["context"]))
    facts = {(fact["family"], fact["name"]): fact for fact in document["facts"]}
    chosen = []
    for question in document["questions"]:
        fact = facts.get((question["family"], question["name"])) if question["kind"] == "present" else None
        if fact is not None:
            chosen.append(group_of_position(key_end_token(document, fact, layout), context_len, groups))
        elif question["kind"] in ("present", "absent"):
            chosen.append(zlib.crc32(question["question"].encode("utf-8")) % groups)
        else:
            chosen.append(-1)
    return chosen


class KeyRoutedGist(Gist):
    """The held-out checks of a ``gist_read: routed`` run: each question answered from the group that holds its key,
    so the curve measures the compressor apart from the passage index that routes at inference."""

    name = "gist/key-routed"

    def prepare(self, document: dict, context_ids: list[int], shared) -> Prepared:
        prepared = super().prepare(document, context_ids, shared)
        groups = view_groups(self.compressor.gist_view, prepared.state.num_gist)
        # run_document prepares a document, then asks all its questions: the routes of the one being asked
        read = dict(document, context=context_text(document))       # the text compressed, any prefix included
        self.routes = dict(zip((question["question"] for question in document["questions"]),
                               question_groups(read, self.compressor.layout, groups)))
        return prepared

    def answer(self, prepared: Prepared, question: dict, max_new_tokens: int) -> Decoded:
        group = self.routes[question["question"]]
        group_kv = prepared.state if group < 0 else prepared.state.only_group(group, self.compressor.gist_view)
        return super().answer(dataclasses.replace(prepared, state=group_kv), question, max_new_tokens)
