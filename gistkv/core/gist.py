"""Gist tokens and the attention pattern that forces a context through them.

A training/eval sequence is laid out as four segments::

    [context ........][GIST_0 … GIST_{N-1}][query ....][answer ...][pad ...]

Causal attention everywhere, plus one rule: query and answer tokens may not attend to
context tokens. Everything the answer needs must therefore flow through the gist tokens'
keys and values, which is exactly the cache that ``gistkv.core.kv`` keeps.

A training document carries one ``[query][answer]`` *block* per question asked about it. Each
block sees the gist tokens and itself only, and its positions restart right after the gist
tokens, so every block is laid out exactly like the one question asked at inference; a block
number per token (0 = context/gist/pad) says which.

    >>> import torch
    >>> from gistkv.core.gist import gist_attention_mask, CONTEXT, GIST, AFTER
    >>> segments = torch.tensor([[CONTEXT, CONTEXT, GIST, AFTER, AFTER]])
    >>> (gist_attention_mask(segments, torch.float32)[0, 0] == 0).int()
    tensor([[1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [0, 0, 1, 1, 0],
            [0, 0, 1, 1, 1]], dtype=torch.int32)
"""

from __future__ import annotations

import torch

from gistkv.errors import GistkvError

GIST_TOKEN_TEMPLATE = "<GIST_{index}>"

# Segment codes, one per token position.
PAD, CONTEXT, GIST, AFTER = 0, 1, 2, 3

# What a gist token sees of the context (``train.gist_view``): "all" of it, its own chunk ("chunks": one chunk per
# gist token), or its group's chunk ("groups:G": the gist tokens split into G groups, the context into G chunks).
GIST_VIEWS = ("all", "chunks", "groups:G")
# What an answer reads of the gist (``train.gist_read``): every token, or "routed": one group (gistkv.core.routing).
GIST_READS = ("all", "routed")


def gist_read_problem(gist_read: str, gist_view: str) -> str | None:
    """Why an answer cannot read the gist this way (``train.gist_read`` with ``train.gist_view``), or None: the one
    rule that training params and a saved compressor.json are both held to.

        >>> gist_read_problem("routed", "groups:3") is None, gist_read_problem("routed", "all")[:24]
        (True, "'routed' needs a gist_vi")
    """
    if gist_read not in GIST_READS:
        return f"must be one of {', '.join(GIST_READS)}, got {gist_read!r}."
    if gist_read == "routed" and gist_view == "all":
        return ("'routed' needs a gist_view with groups (groups:G or chunks), not 'all': there is one group to read; "
                "set train.gist_view: groups:G (or train.gist_read: all) and retrain.")
    return None


def view_groups(gist_view: str, num_gist: int) -> int | None:
    """How many chunks a gist view splits the context into: None for "all" (no split), ``num_gist`` for
    "chunks", G for "groups:G"; anything else, or more groups than gist tokens, is a one-line error.

        >>> view_groups("groups:3", 30), view_groups("chunks", 10), view_groups("all", 10)
        (3, 10, None)
    """
    if gist_view in ("all", "chunks"):
        return None if gist_view == "all" else num_gist
    count = gist_view.removeprefix("groups:")
    if gist_view.startswith("groups:") and count.isdigit() and 1 <= int(count) <= num_gist:
        return int(count)
    raise GistkvError(f"gist_view: must be one of {', '.join(GIST_VIEWS)} (G from 1 to the {num_gist} gist tokens), "
                      f"got {gist_view!r}.")


def token_groups(gist_view: str, num_gist: int) -> list[int]:
    """The group of each gist token under a view: consecutive tokens share one, G groups in all ("all": one group).

        >>> token_groups("groups:2", 5), token_groups("all", 3)
        ([0, 0, 0, 1, 1], [0, 0, 0])
    """
    groups = view_groups(gist_view, num_gist) or 1
    return [token * groups // num_gist for token in range(num_gist)]


def chunk_bounds(context_len: int, groups: int) -> list[int]:
    """Where the context's G chunks start, and the last one's end: chunk g is ``bounds[g]:bounds[g + 1]``."""
    return [context_len * index // groups for index in range(groups + 1)]


def group_of_position(position: int, context_len: int, groups: int) -> int:
    """The chunk (and so the gist group) that reads context token ``position``.

        >>> [group_of_position(position, 6, 3) for position in range(6)]
        [0, 0, 1, 1, 2, 2]
    """
    bounds = chunk_bounds(context_len, groups)
    return max(group for group in range(groups) if bounds[group] <= min(position, context_len - 1))


def is_gist_view(gist_view: str) -> bool:
    """Whether ``gist_view`` names a view (the group count checked against the gist tokens when the mask is made)."""
    try:
        view_groups(gist_view, 10**6)
    except GistkvError:
        return False
    return True


def gist_token_strings(num_tokens: int) -> list[str]:
    return [GIST_TOKEN_TEMPLATE.format(index=index) for index in range(num_tokens)]


def add_gist_tokens(tokenizer, model, num_tokens: int) -> list[int]:
    """Add ``<GIST_i>`` special tokens once, grow the embeddings, return their ids.

    Idempotent: tokens already in the vocabulary are reused, and the embedding matrix is only
    resized when it is smaller than the tokenizer. New rows start near the mean embedding
    (see ``gist_init``).
    """
    if num_tokens < 0:
        raise GistkvError(f"gist.num_tokens: must be at least 0, got {num_tokens}.")
    if num_tokens == 0:       # the plain-LoRA control reads the context itself
        return []
    wanted = gist_token_strings(num_tokens)
    vocab = tokenizer.get_vocab()
    missing = [token for token in wanted if token not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    gist_ids = tokenizer.convert_tokens_to_ids(wanted)
    if model is not None:
        embeddings = model.get_input_embeddings()
        old_rows = embeddings.weight.shape[0]
        if old_rows < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            with torch.no_grad():
                weight = model.get_input_embeddings().weight
                weight[old_rows:] = gist_init(weight[:old_rows], len(tokenizer) - old_rows)
    return list(gist_ids)


def gist_init(vocab: torch.Tensor, rows: int) -> torch.Tensor:
    """Mean embedding plus seeded noise of the vocabulary's per-dimension spread.

    Identical rows would leave the N gist tokens told apart only by their RoPE position, a
    symmetry training is slow to break; the noise is drawn from a fixed generator so the
    same model always gets the same gist embeddings.
    """
    generator = torch.Generator().manual_seed(rows)     # a CPU generator: the same rows on every device
    noise = torch.randn(rows, vocab.shape[1], generator=generator, dtype=torch.float32).to(vocab.device)
    mean, std = vocab.float().mean(dim=0), vocab.float().std(dim=0)
    return (mean + noise * std).to(vocab.dtype)


def across_blocks(query_blocks: torch.Tensor, key_blocks: torch.Tensor) -> torch.Tensor:
    """True where a query token of one question block would see a token of another block."""
    query_blocks, key_blocks = query_blocks[..., :, None], key_blocks[..., None, :]
    return (query_blocks > 0) & (key_blocks > 0) & (query_blocks != key_blocks)


def gist_attention_mask(segments: torch.Tensor, dtype: torch.dtype, blocks: torch.Tensor | None = None) -> torch.Tensor:
    """Additive 4-D mask (batch, 1, T, T) from segment codes (batch, T) and block numbers (batch, T).

    0 where attention is allowed, the dtype's minimum where it is not (a finite value, so a
    fully masked padding row stays finite instead of NaN).
    """
    length = segments.shape[1]
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=segments.device))
    query_is_after = (segments == AFTER)[:, :, None]        # (batch, T, 1)
    key_is_context = (segments == CONTEXT)[:, None, :]      # (batch, 1, T)
    key_is_pad = (segments == PAD)[:, None, :]
    allowed = causal[None] & ~(query_is_after & key_is_context) & ~key_is_pad
    if blocks is not None:
        allowed &= ~across_blocks(blocks, blocks)
    allowed |= torch.eye(length, dtype=torch.bool, device=segments.device)[None]  # pads see themselves
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def prefix_attention_mask(prefix_len: int, query_len: int, dtype: torch.dtype, device=None) -> torch.Tensor:
    """Mask (1, 1, q, prefix+q): every cached prefix entry visible, causal among the new tokens."""
    allowed = torch.ones(query_len, prefix_len + query_len, dtype=torch.bool, device=device)
    allowed[:, prefix_len:] = torch.tril(allowed[:, prefix_len:])
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[None, None]


def gist_view_blocked(context_len: int, num_gist: int, gist_view: str, device=None) -> torch.Tensor | None:
    """(num_gist, context_len), True where a gist token may not see a context token; None for the view "all".

    "chunks": the context splits into ``num_gist`` contiguous chunks of near-equal length; gist token i sees
    chunk i and the context's first token (BOS where the tokenizer adds one: an attention sink) — and, causally, the gist
    tokens before it. Each gist token then holds its own stretch of the document, so two facts far apart
    cannot collapse into one blended number (docs/experiments.md, the probes). "groups:G": the same with G chunks,
    each read by a group of consecutive gist tokens, so each group can keep a number whole (a trained gist spreads
    one number's digits over several tokens, one digit per token: docs/experiments.md, "one tape").

        >>> gist_view_blocked(6, 3, "chunks").int()
        tensor([[0, 0, 1, 1, 1, 1],
                [0, 1, 0, 0, 1, 1],
                [0, 1, 1, 1, 0, 0]], dtype=torch.int32)
        >>> gist_view_blocked(4, 4, "groups:2").int()
        tensor([[0, 0, 1, 1],
                [0, 0, 1, 1],
                [0, 1, 0, 0],
                [0, 1, 0, 0]], dtype=torch.int32)
    """
    groups = view_groups(gist_view, num_gist)
    if groups is None:
        return None
    bounds = chunk_bounds(context_len, groups)
    blocked = torch.ones(num_gist, context_len, dtype=torch.bool, device=device)
    for token, group in enumerate(token_groups(gist_view, num_gist)):
        blocked[token, bounds[group]:bounds[group + 1]] = False
    blocked[:, :1] = False
    return blocked


def tail_attention_mask(context_len: int, num_gist: int, num_after: int, dtype: torch.dtype, device=None,
                        use_gist_mask: bool = True, after_blocks: torch.Tensor | None = None,
                        gist_view: str = "all", after_reads: torch.Tensor | None = None) -> torch.Tensor:
    """Mask (1, 1, T, context+T) for ``[gist; query; answer …]`` (T tokens) on top of a cached context.

    The same rules as ``gist_attention_mask``, for the two-pass layout: gist rows see the
    context (all of it, or their chunk: ``gist_view_blocked``), query/answer rows see only the gist
    tokens and their own block (the context too without ``use_gist_mask``). ``after_blocks`` numbers
    the ``num_after`` tokens' blocks. ``after_reads`` (``train.gist_read: routed``) gives each of them the one gist
    group it may read (-1: every group). With ``num_after`` 0 it is the compression pass's mask.
    """
    mask = prefix_attention_mask(context_len, num_gist + num_after, dtype, device)
    if (blocked := gist_view_blocked(context_len, num_gist, gist_view, device)) is not None:
        mask[0, 0, :num_gist, :context_len].masked_fill_(blocked, torch.finfo(dtype).min)
    if use_gist_mask:
        mask[0, 0, num_gist:, :context_len] = torch.finfo(dtype).min
    if after_blocks is not None:
        tail = mask[0, 0, num_gist:, context_len + num_gist:]
        tail.masked_fill_(across_blocks(after_blocks, after_blocks), torch.finfo(dtype).min)
    if after_reads is not None:
        groups = torch.tensor(token_groups(gist_view, num_gist), device=device)
        other_group = (after_reads[:, None] >= 0) & (after_reads[:, None] != groups[None, :])
        mask[0, 0, num_gist:, context_len:context_len + num_gist].masked_fill_(other_group, torch.finfo(dtype).min)
    return mask


def model_inputs(batch: dict, labels: bool = True) -> dict:
    """The collator's tensors a model forward takes (``segments``/``blocks`` are for the trainer)."""
    keys = ("input_ids", "attention_mask", "position_ids") + (("labels",) if labels else ())
    return {key: batch[key] for key in keys}


class GistCollator:
    """Batch ``{context_ids, questions: [(query_ids, answer_ids), ...]}`` dicts into one masked forward pass.

    Right padding; position ids run 0..T-1 (each extra block restarting after the gist tokens)
    so they match the two-pass path exactly; labels are -100 everywhere except the answer
    tokens. ``segments`` (the codes above) and ``blocks`` let the trainer split a row into
    context and tail when the context is read by the base model; ``reads`` gives each question token the gist
    group it reads (an example's ``reads``, one per question, from ``train.gist_read: routed``; else -1: every group).
    """

    def __init__(self, gist_ids: list[int], pad_id: int, dtype: torch.dtype = torch.float32,
                 use_gist_mask: bool = True):
        self.gist_ids = list(gist_ids)
        self.pad_id = pad_id
        self.dtype = dtype
        # False gives the "plain LoRA" control: same tokens, ordinary causal attention.
        self.use_gist_mask = use_gist_mask

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        rows = []
        for example in examples:
            prefix = len(example["context_ids"]) + len(self.gist_ids)
            ids, labels = list(example["context_ids"]) + self.gist_ids, [-100] * prefix
            positions, blocks, reads = list(range(prefix)), [0] * prefix, [-1] * prefix
            question_reads = example.get("reads") or [-1] * len(example["questions"])
            for block, ((query_ids, answer_ids), group) in enumerate(zip(example["questions"], question_reads), start=1):
                ids += list(query_ids) + list(answer_ids)
                labels += [-100] * len(query_ids) + list(answer_ids)
                positions += range(prefix, prefix + len(query_ids) + len(answer_ids))
                blocks += [block] * (len(query_ids) + len(answer_ids))
                reads += [group] * (len(query_ids) + len(answer_ids))
            segments = ([CONTEXT] * len(example["context_ids"]) + [GIST] * len(self.gist_ids)
                        + [AFTER] * (len(ids) - prefix))
            rows.append((ids, segments, labels, positions, blocks, reads))
        length = max(len(row[0]) for row in rows)
        input_ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        segments = torch.full((len(rows), length), PAD, dtype=torch.long)
        labels = torch.full((len(rows), length), -100, dtype=torch.long)
        position_ids = torch.arange(length).expand(len(rows), length).clone()
        blocks = torch.zeros((len(rows), length), dtype=torch.long)
        reads = torch.full((len(rows), length), -1, dtype=torch.long)
        for row, values in enumerate(rows):
            for tensor, value in zip((input_ids, segments, labels, position_ids, blocks, reads), values):
                tensor[row, : len(value)] = torch.tensor(value)
        # Without the gist mask every real token is treated like context: plain causal attention.
        mask_segments = segments if self.use_gist_mask else torch.where(segments == PAD, PAD, CONTEXT)
        return {
            "input_ids": input_ids,
            "attention_mask": gist_attention_mask(mask_segments, self.dtype, blocks),
            "position_ids": position_ids,
            "labels": labels,
            "segments": segments,
            "blocks": blocks,
            "reads": reads,
        }
