"""Rewrite a probe's training answers to name the stored fact's kind first: "a pass key: 48213" for a present
question, "a pass key: The document does not say." for an absent one (the label is the document's own fact's,
not the asked one's). The reader then writes down what the gist holds before it answers, so the choice between
the number and the decline can compare two texts (the question and the label) rather than read that from the
gist. One-fact documents only; answers already rewritten are left as they are. Run between make_niah and
train_gist (the two steps of docs/probes/run_probe.sh), D a probe folder holding params.yaml:

    for l in en ko; do python stages/make_niah.py --lang $l --params D/params.yaml --out-root D/niah; done
    python docs/probes/kind_first.py D/niah
    python stages/train_gist.py --params D/params.yaml --base models/base --niah D/niah --out D/gist \
      --checkpoints D/ckpt --metrics D/train
"""
import json
import sys
from pathlib import Path

from gistkv.data.needles import load_families
from gistkv.io import atomic_path

families = load_families()
for lang in ("en", "ko"):
    path = Path(sys.argv[1]) / lang / "train.jsonl"
    documents = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for document in documents:
        (fact,) = document["facts"]
        label = families[fact["family"]].label(lang)
        for question in document["questions"]:
            if question["kind"] in ("present", "absent") and not question["answer"].startswith(f"{label}: "):
                question["answer"] = f"{label}: {question['answer']}"
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents), encoding="utf-8")
    print(lang, len(documents), documents[0]["questions"])
