"""A routed read (``train.gist_read: routed``): the answer reads one group of a ``groups:G`` gist, the group whose
chunk of the document holds the passage most like the question, found by the passage index stored with the gist
(``gistkv.core.presence``). Training routes each question to the group holding its key
(``gistkv.training.routes``); both place text in the document with ``token_of_chars``.

    from gistkv.core.routing import routed_gist
    gist_kv, group = routed_gist(compressor, GistKV.load("doc.gist.safetensors"), "What is the pass key?", embed)
"""

from __future__ import annotations

from bisect import bisect_right

from gistkv.core.gist import group_of_position, view_groups
from gistkv.core.presence import PresenceIndex
from gistkv.core.prompt import PromptLayout
from gistkv.errors import GistkvError


def token_of_chars(layout: PromptLayout, text: str, chars: list[int]) -> list[int]:
    """The context token (numbered as ``layout.document_ids(text)`` numbers them) holding each character offset."""
    offsets = layout.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True).offset_mapping
    starts = [start for start, _ in offsets]
    return [len(layout.head_ids) + max(bisect_right(starts, char) - 1, 0) for char in chars]


def routed_gist(compressor, gist_kv, question: str, embed, index: PresenceIndex | None = None, path="the artifact"):
    """(the gist the answer reads, the group it reads or None for every group). A compressor trained with
    ``gist_read: routed`` reads the group of the passage most like the question; any other reads the whole gist."""
    if compressor.gist_read != "routed":
        return gist_kv, None
    index = index if index is not None else PresenceIndex.of(gist_kv, path)
    if index is None or index.token_ends is None:
        raise GistkvError(f"{path}: this compressor reads one gist group per question, chosen by the passage index "
                          "with its passages' places, which the file lacks; compress the document again (with the index).")
    group = closest_group(index, question, embed, compressor.gist_view, gist_kv)
    return gist_kv.only_group(group, compressor.gist_view), group


def closest_group(index: PresenceIndex, question: str, embed, gist_view: str, gist_kv) -> int:
    """The gist group whose chunk of the document holds the end of the passage most like the question."""
    _, row = index.best(question, embed)
    groups = view_groups(gist_view, gist_kv.num_gist)
    return group_of_position(int(index.token_ends[row]), gist_kv.context_tokens, groups)
