#!/bin/bash
# A reduced-scale probe (docs/experiments.md, "Probes at a reduced scale"): make_niah + train_gist with a params copy.
#   docs/probes/run_probe.sh p-adapted train.context_encoder=adapted
#   EXTRA=--control docs/probes/run_probe.sh p-ctl                        # the plain-LoRA control
#   BASE=/tmp/base-nf4 EXTRA=--control docs/probes/run_probe.sh p-ctl-nf4  # a base prepared with model.load_in_4bit
#   docs/probes/run_probe.sh p-distill +train.distill_from=/work/probes/p-ctl500/gist   # + : a key params.yaml lacks
#   docs/probes/run_probe.sh p-ladder2 +train.init_from=/work/probes/p-l128/gist         # a warm start (same shape)
# Writes $PROBES/NAME/ (default /work/probes): params.yaml, niah/, gist/, ckpt/, train/ (held-out checks in train/).
set -e
NAME=$1; shift
D=${PROBES:-/work/probes}/$NAME; mkdir -p "$D"
cd "$(dirname "$0")/../.."
python - "$D/params.yaml" "$@" <<'PY'
import sys, yaml
out, *sets = sys.argv[1:]
p = yaml.safe_load(open("params.yaml"))
over = {"niah.train.context_lengths": [128, 256, 512], "niah.train.samples_per_length": [200, 180, 120],
        "train.max_steps": 1000, "train.lr_scheduler_kwargs.num_decay_steps": 300,
        "niah.dev.context_lengths": [512], "niah.dev.samples_per_length": [48], "train.validation_samples": 32}
for s in sets:
    k, v = s.split("=", 1); over[k] = yaml.safe_load(v)
for k, v in over.items():
    new = k.startswith("+")   # +train.distill_from=...: a key params.yaml does not hold yet (its dataclass default)
    node = p; *head, last = k.lstrip("+").split(".")
    for h in head: node = node[h]
    assert new or last in node, k
    node[last] = v
yaml.safe_dump(p, open(out, "w"), allow_unicode=True, sort_keys=False)
print(over)
PY
for l in en ko; do python stages/make_niah.py --lang $l --params "$D/params.yaml" --out-root "$D/niah"; done
python stages/train_gist.py --params "$D/params.yaml" --base "${BASE:-models/base}" --niah "$D/niah" --out "$D/gist" \
  --checkpoints "$D/ckpt" --metrics "$D/train" $EXTRA
