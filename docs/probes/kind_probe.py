"""Does a probe's gist hold what kind of fact the document gives, or only its digits? A linear read-out of the
gist's keys and values: on fresh one-fact documents (training families, dev passages, dev keys and names,
512 tokens, English and Korean), a ridge classifier per layer predicts the fact's family (12 kinds, chance
~8 %) and, as a positive control, the key's first digit (chance ~11 %). Scored by 5-fold cross-validation,
the ridge strength chosen inside each training fold, so no fold's score chose anything.

If the family reads out well, the gist stores the kind and the answering side fails to use it; if only the
digits do, the gist never stored the kind (docs/experiments.md, "The gist holds the digits, not what they count").

    python docs/probes/kind_probe.py p-decline 20      # 20 documents per family and language (480 in all)
    python docs/probes/kind_probe.py p-decline-kind 20 ask   # also ask the first 96 the kind question (kind_fraction)
"""
import sys
from pathlib import Path

import torch
from readout import cross_validated

from gistkv.core.compressor import load_compressor
from gistkv.core.kv import answer, compress
from gistkv.data.needles import kind_questions, load_families
from gistkv.data.niah import DocumentMaker, language
from gistkv.data.niah_params import NiahParams
from gistkv.params import from_mapping, read_params

LENGTH = 512


def documents(params: NiahParams, tokenizer, per_family: int) -> list[dict]:
    """``per_family`` one-fact documents per training family and language, on the dev split's passages."""
    out = []
    for lang in ("en", "ko"):
        maker = DocumentMaker(params, lang, "dev", tokenizer, stream="-kindprobe")
        sources = language(params, lang).train_sources
        for index in range(per_family * len(maker.train_families)):
            family = maker.train_families[index % len(maker.train_families)]
            name = maker.rng.choice(maker.names) if family.keyed else ""
            fact = maker.fact(family, name, maker.rng.uniform(0.1, 0.9))
            # the source is drawn, not dealt by index: dealt, it would follow the family and give it away
            out.append(maker.document(index, LENGTH, maker.rng.choice(sources), [fact], [], "seen"))
    return out


probe, per_family = sys.argv[1], int(sys.argv[2])
root = Path(f"/work/probes/{probe}")
# named by the adapter's time, so a retrained gist never reads the features of the one before
stamp = int((root / "gist" / "adapter").stat().st_mtime)
cache = root / f"kind_features_{per_family}_{stamp}.pt"
asking = sys.argv[3:] == ["ask"]
if asking or not cache.exists():
    c = load_compressor(root / "gist", base_dir="/work/main/models/base")
    mapping = read_params(root / "params.yaml")["niah"]
    mapping["train"].setdefault("kind_fraction", 0.0)       # probes made before the kind question existed
    params = from_mapping(NiahParams, mapping, "niah")
    docs = documents(params, c.tokenizer, per_family)
if cache.exists():
    saved = torch.load(cache)
else:
    families = [f.name for f in DocumentMaker(params, "en", "dev", c.tokenizer).train_families]
    per_layer = []
    with torch.no_grad():
        for document in docs:
            kv = compress(c, document["context"])
            per_layer.append(torch.stack([torch.cat([k.flatten(), v.flatten()]).double()
                                          for k, v in zip(kv.keys, kv.values)]))
    saved = {"features": torch.stack(per_layer),             # (documents, layers, 2 * kv_heads * gist * head_dim)
             "family": torch.tensor([families.index(d["facts"][0]["family"]) for d in docs]),
             "digit": torch.tensor([int(d["facts"][0]["key"][0]) for d in docs]),
             "lang": [d["lang"] for d in docs]}
    torch.save(saved, cache)
# Shuffled once with a fixed seed, so folds mix families, languages and keys.
order = torch.randperm(len(saved["family"]), generator=torch.Generator().manual_seed(0))
x, family, digit = saved["features"][order], saved["family"][order], saved["digit"][order]
print(f"{probe}: {len(x)} documents, {x.shape[1]} layers, {x.shape[2]} features per layer")
for layer in [*range(0, x.shape[1], 5), x.shape[1] - 1]:
    print(f"layer {layer:2d}: family {cross_validated(x[:, layer], family):.2f}, "
          f"first digit {cross_validated(x[:, layer], digit):.2f}")
print(f"chance: family {1 / 12:.2f}, first digit {1 / 9:.2f}")
if asking:      # the first documents of each language: every family, in turn
    asked = [d for lang in ("en", "ko") for d in [d for d in docs if d["lang"] == lang][:48]]
    right = {"en": 0, "ko": 0}
    with torch.no_grad():
        for d in asked:
            label = load_families()[d["facts"][0]["family"]].label(d["lang"])
            said = answer(c, compress(c, d["context"]), kind_questions(d["lang"])[0], 16).strip()
            right[d["lang"]] += said.rstrip(".") == label
            print(f"  {d['lang']} {d['facts'][0]['family']:<18} {said!r}")
    for lang in ("en", "ko"):
        print(f"kind question, {lang}: {right[lang]}/{sum(d['lang'] == lang for d in asked)} exact labels")
