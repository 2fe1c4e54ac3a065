"""What the probes of a ``groups:G`` gist share: which stretch of a document holds a fact, and the gist of one group.

    from gist_groups import only_group, part_of     # docs/probes/ on the path, as when a probe runs
    kv_of_group = only_group(compress(c, document["context"]), part_of(document, fact, 3), 3)
"""
from gistkv.core.kv import GistKV

KEY_OFFSET = 8       # tokens from a needle's start to its key, about: the key decides the stretch


def part_of(document: dict, fact: dict, parts: int) -> int:
    """Which of ``parts`` equal stretches of the document holds the fact's key (its needle's start plus KEY_OFFSET)."""
    tokens = document["context_tokens"]
    return min(int((fact["depth"] * tokens + KEY_OFFSET) * parts / tokens), parts - 1)


def only_group(kv: GistKV, group: int, parts: int) -> GistKV:
    """The gist of one group of a groups:``parts`` view: the other tokens' keys and values dropped (answering
    still continues at the same position)."""
    size = kv.num_gist // parts
    cut = slice(group * size, (group + 1) * size)
    return GistKV([k[:, cut] for k in kv.keys], [v[:, cut] for v in kv.values], kv.metadata)
