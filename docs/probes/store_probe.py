"""Does a probe's gist store both numbers of a two-fact document, or a blend? A linear read-out of the gist's
keys and values (as kind_probe.py: ridge, 5-fold, the strength chosen inside each training fold) on fresh
two-fact documents (two training families, dev passages, dev keys and names, English and Korean): per layer,
the 1st to 4th digit of the fact placed first in the document (A, depth 10-45 %) and of the one placed second
(B, 55-90 %); chance ~10 %. Beside them, one-fact documents as the store's ceiling.

If both facts' digits read out well, the store holds the two numbers apart and the answering side fails to pick
one; if only the first digits (or only one fact's) do, the store itself blends them
(docs/experiments.md, "One tape").

    python docs/probes/store_probe.py p-two-grow30 240 256     # 240 documents per language and kind, 256 tokens
    python docs/probes/store_probe.py p-two-from-decline 120 256 tokens   # one-fact documents, each gist token alone:
                                                                          # which token holds which digit
"""
import sys
from pathlib import Path

import torch
from readout import cross_validated

from gistkv.core.compressor import load_compressor
from gistkv.core.kv import compress
from gistkv.data.niah import DocumentMaker, language
from gistkv.data.niah_params import NiahParams
from gistkv.params import from_mapping, read_params

DIGITS = 4


def documents(params: NiahParams, tokenizer, count: int, length: int, facts: int) -> list[dict]:
    """``count`` documents per language holding ``facts`` (1 or 2) facts of distinct training families."""
    out = []
    for lang in ("en", "ko"):
        maker = DocumentMaker(params, lang, "dev", tokenizer, stream=f"-storeprobe{facts}")
        sources = language(params, lang).train_sources
        for index in range(count):
            families = maker.rng.sample(maker.train_families, facts)
            depths = [maker.rng.uniform(0.1, 0.45), maker.rng.uniform(0.55, 0.9)][:facts]
            made = [maker.fact(family, maker.rng.choice(maker.names) if family.keyed else "", depth)
                    for family, depth in zip(families, depths)]
            out.append(maker.document(index, length, maker.rng.choice(sources), made, [], "seen"))
    return out


def features(compressor, docs: list[dict]) -> torch.Tensor:
    """(documents, layers, gist, 2 * kv_heads * head_dim): every layer's keys and values of each gist token."""
    with torch.no_grad():
        return torch.stack([torch.stack([torch.cat([k.transpose(0, 1).flatten(1), v.transpose(0, 1).flatten(1)], 1).double()
                                         for k, v in zip(kv.keys, kv.values)])   # (kv_heads, gist, dim) each
                            for kv in (compress(compressor, d["context"]) for d in docs)])


def digit_labels(docs: list[dict], which: int) -> torch.Tensor:
    """(documents, DIGITS): the first digits of the fact at depth order ``which`` (0 = placed first)."""
    ordered = [sorted(d["facts"], key=lambda fact: fact["depth"]) for d in docs]
    return torch.tensor([[int(facts[which]["key"][i]) for i in range(DIGITS)] for facts in ordered])


probe, count, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
root = Path(f"/work/probes/{probe}")
c = load_compressor(root / "gist", base_dir="/work/main/models/base")
mapping = read_params(root / "params.yaml")["niah"]
mapping["train"].setdefault("kind_fraction", 0.0)       # probes made before the kind question existed
params = from_mapping(NiahParams, mapping, "niah")
order = torch.randperm(2 * count, generator=torch.Generator().manual_seed(0))   # folds mix languages and keys
if sys.argv[4:] == ["tokens"]:
    docs = documents(params, c.tokenizer, count, length, 1)
    x = features(c, docs)[order]
    labels = {f"digit {i + 1}": digit_labels(docs, 0)[order, i] for i in range(DIGITS)}
    print(f"{probe}, 1 fact, {len(docs)} documents at {length} tokens, each gist token alone ({x.shape[3]} features)")
    for layer in (25, x.shape[1] - 1):
        for token in range(x.shape[2]):
            print(f"  layer {layer:2d}, gist token {token + 1:2d}: " + ", ".join(
                f"{name} {accuracy:.2f}" for name, accuracy in cross_validated(x[:, layer, token], labels).items()))
    sys.exit()
for facts in (1, 2):
    docs = documents(params, c.tokenizer, count, length, facts)
    x = features(c, docs)[order].flatten(2)
    labels = {f"{'AB'[which]} digit {i + 1}": digit_labels(docs, which)[order, i]
              for which in range(facts) for i in range(DIGITS)}
    print(f"{probe}, {facts} fact(s), {len(docs)} documents at {length} tokens, {x.shape[2]} features per layer")
    for layer in (0, 10, 20, 25, x.shape[1] - 1):
        print(f"  layer {layer:2d}: " + ", ".join(f"{name} {accuracy:.2f}"
                                                  for name, accuracy in cross_validated(x[:, layer], labels).items()))
print("chance ~0.10 per digit")
