"""Rewrite a probe's training answers to name the tape first: which third of the document holds the asked fact
("first: 48213", "second: …", "third: …"). With ``train.gist_view: groups:3`` each third is read by its own group of
gist tokens, so the marker names the group that holds the number: the reader learns to choose a group (a
three-way choice from the question and the gist) apart from reading its digits, which then can follow the marker
it has just written, as it already reads by place (docs/experiments.md, "One tape"). The third is taken where the
key lies: the needle's start plus 8 tokens. Present questions only; answers already rewritten are left as they are.
Run between make_niah and train_gist (as kind_first.py), D a probe folder:

    python docs/probes/tape_first.py D/niah
"""
import json
import sys
from pathlib import Path

from gist_groups import part_of

from gistkv.io import atomic_path

MARKERS = ("first", "second", "third")


for lang in ("en", "ko"):
    path = Path(sys.argv[1]) / lang / "train.jsonl"
    documents = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for document in documents:
        by_key = {(fact["family"], fact["name"]): fact for fact in document["facts"]}
        for question in document["questions"]:
            fact = by_key.get((question["family"], question["name"]))
            if question["kind"] == "present" and fact and not question["answer"].startswith(MARKERS):
                question["answer"] = f"{MARKERS[part_of(document, fact, 3)]}: {question['answer']}"
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents), encoding="utf-8")
    print(lang, len(documents), documents[0]["questions"])
