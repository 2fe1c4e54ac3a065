"""gist/gated: the gist behind the presence gate of ``gistkv ask`` (``gistkv.core.presence``), as an evaluation method.

Its own module so that training, whose held-out checks use ``methods.Gist``, does not depend on the gate.

    method = GistGated(compressor, load_embedder(), min_similarity=0.36, artifact_dir="data/gist_kv/niah_dev_en")
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gistkv.core.decode import Decoded
from gistkv.core.presence import PresenceIndex, passes, question_language
from gistkv.core.prompt import encode
from gistkv.core.routing import routed_gist, token_of_chars
from gistkv.data.needles import decline_answer
from gistkv.evaluation.methods import Gist, Prepared, context_text, question_query


class GistGated(Gist):
    """The gist behind a presence gate (``gistkv.core.presence``), as ``gistkv ask`` answers: the stored file
    holds the passage index too, and its making is charged to the one-off cost, the gate to each answer."""

    name = "gist/gated"
    file_suffix = ".gated"

    def __init__(self, compressor, embed, min_similarity: float, artifact_dir: str | Path | None = None):
        super().__init__(compressor, artifact_dir)
        self.embed, self.min_similarity = embed, min_similarity

    def index(self, document: dict) -> PresenceIndex:
        text = context_text(document)
        return PresenceIndex.build(text, self.embed, lambda chars: token_of_chars(self.compressor.layout, text, chars))

    def answer(self, prepared: Prepared, question: dict, max_new_tokens: int) -> Decoded:
        text = question.get("question", question_query(question))
        index = PresenceIndex.of(prepared.state)
        similarity, passed = passes(index, text, self.embed, self.min_similarity)
        group = None
        if passed:      # a gist_read: routed compressor reads the group of the closest passage, as ``gistkv ask``
            gist_kv, group = routed_gist(self.compressor, prepared.state, text, self.embed, index)
            decoded = super().answer(dataclasses.replace(prepared, state=gist_kv), question, max_new_tokens)
        else:       # declined before the gist is asked: no model probability to report
            decoded = Decoded(token_ids=encode(self.compressor.tokenizer, decline_answer(question_language(text))),
                              ttft_s=0.0, decode_s=0.0, kv_bytes=0, attended_tokens=0, token_probs=[])
        decoded.extra = {"presence": round(similarity, 4), "gated": not passed,
                         **({"gist_group": group} if group is not None else {})}
        return decoded
