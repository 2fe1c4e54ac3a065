"""One teacher-forced pass of a compressor's model over token ids that follow a stored gist, as answering
places them (positions after the gist, the gist and the ids causally visible): the probes that score answers
token by token (answer_nll.py, decline_auc.py, digit_nll.py).

    from gist_forward import logits_after_gist      # docs/probes/ on the path, as when a probe runs
    logits = logits_after_gist(c, compress(c, text), query_ids + answer_ids)     # (len(ids), vocab)
"""
import torch

from gistkv.core.decode import model_dtype
from gistkv.core.gist import prefix_attention_mask


@torch.no_grad()
def logits_after_gist(compressor, kv, ids: list[int]) -> torch.Tensor:
    """The logits at each of ``ids`` (the next token's distribution), read through the gist ``kv`` only."""
    dtype = model_dtype(compressor.model)
    positions = torch.arange(kv.position_offset, kv.position_offset + len(ids))[None]
    out = compressor.model(input_ids=torch.tensor([ids]), attention_mask=prefix_attention_mask(kv.num_gist, len(ids), dtype),
                           position_ids=positions, cache=kv.to_cache(compressor.device, dtype), use_cache=True)
    return out.logits[0]
