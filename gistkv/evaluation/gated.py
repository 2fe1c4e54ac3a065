"""gist/gated: the gist behind the presence gate of ``gistkv ask`` (``gistkv.core.presence``), as an evaluation method.

Its own module so that training, whose held-out checks use ``methods.Gist``, does not depend on the gate.

    method = GistGated(compressor, load_embedder(), min_similarity=0.36, artifact_dir="data/gist_kv/niah_dev_en")
"""

from __future__ import annotations

from pathlib import Path

from gistkv.core.decode import Decoded
from gistkv.core.presence import PresenceIndex, passes, question_language
from gistkv.core.prompt import encode
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
        return PresenceIndex.build(context_text(document), self.embed)

    def answer(self, prepared: Prepared, question: dict, max_new_tokens: int) -> Decoded:
        text = question.get("question", question_query(question))
        similarity, passed = passes(PresenceIndex.of(prepared.state), text, self.embed, self.min_similarity)
        if passed:
            decoded = super().answer(prepared, question, max_new_tokens)
        else:       # declined before the gist is asked: no model probability to report
            decoded = Decoded(token_ids=encode(self.compressor.tokenizer, decline_answer(question_language(text))),
                              ttft_s=0.0, decode_s=0.0, kv_bytes=0, attended_tokens=0, token_probs=[])
        decoded.extra = {"presence": round(similarity, 4), "gated": not passed}
        return decoded
