"""Where a probe's answer goes wrong on two-fact documents: the teacher-forced loss (nats) and the greedy
accuracy of each answer token by its place, over its training (or dev) documents that hold ``facts`` facts.
If the first digit carries the loss and the later ones are nearly free once the first is given, the gist's
reader fails at choosing which number to copy, not at copying it; if every place is a coin flip and the wrong
digit is the other number's at that place, the store keeps digits by place without binding them to their number.

    python docs/probes/digit_nll.py p-two-from-decline 2 40     # 40 two-fact training documents (English)
    python docs/probes/digit_nll.py p-two-groups3 2 40 3        # the same, apart by whether the two facts lie in
                                                                # one third of the document (groups:3) or not
    python docs/probes/digit_nll.py p-two-groups3 2 40 3 routed # ... answering from the asked fact's group only
                                                                # (the other groups' keys and values dropped)
    python docs/probes/digit_nll.py p-two-groups3 2 48 3 routed dev   # the same on its English dev documents
"""
import json
import sys
from collections import defaultdict

import torch
import torch.nn.functional as F
from gist_forward import logits_after_gist
from gist_groups import only_group, part_of

from gistkv.core.compressor import load_compressor
from gistkv.core.kv import answer, compress
from gistkv.core.prompt import answer_text, encode, query_text
from gistkv.evaluation.evaluate import score_niah

probe, facts, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
parts = int(sys.argv[4]) if len(sys.argv) > 4 else 0      # split by whether the facts share a 1/parts of the document
routed = "routed" in sys.argv[5:]                           # read only the gist group of the asked fact's part
split = "dev" if "dev" in sys.argv[5:] else "train"          # its held-out documents (present questions only)

c = load_compressor(f"/work/probes/{probe}/gist", base_dir="/work/main/models/base")
lines = open(f"/work/probes/{probe}/niah/en/{split}.jsonl", encoding="utf-8").read().splitlines()
documents = [d for d in map(json.loads, lines) if len(d["facts"]) == facts][:count]
if parts:
    apart = [d for d in documents if len({part_of(d, f, parts) for f in d["facts"]}) == facts]
    print(f"{len(apart)} of {len(documents)} documents hold their facts in different parts of {parts}; only those are scored")
    documents = apart
nll, right, other = defaultdict(list), defaultdict(list), defaultdict(list)    # place of the answer token -> values
exact = []       # greedy answers whose number is the asked one
with torch.no_grad():
    for document in documents:
        whole = compress(c, document["context"])
        for question in [q for q in document["questions"] if q["kind"] == "present"]:
            asked = next((f for f in document["facts"] if (f["family"], f["name"]) == (question["family"], question["name"])), None)
            kv = only_group(whole, part_of(document, asked, parts), parts) if routed else whole
            said = answer(c, kv, question["question"], 16)
            # an answer that names a label or tape first ("second: 48213") is scored on its number
            words, sep, number = question["answer"].rpartition(": ")
            exact.append(score_niah(said, {**question, "answer": number})["correct"])
            query = c.layout.query_ids(query_text(question["question"]))
            target = encode(c.tokenizer, answer_text(question["answer"]))
            # the document's other number, tokenized alike: is a wrong digit the other number's digit at that place?
            # (behind the same words, for an answer that names a label or tape first)
            others = [encode(c.tokenizer, answer_text(words + sep + f["key"])) for f in document["facts"] if f["key"] != number]
            logits = logits_after_gist(c, kv, query + target)[len(query) - 1:-1].float()   # those predicting the answer
            for place, (row, token) in enumerate(zip(logits, target)):
                nll[place].append(F.cross_entropy(row[None], torch.tensor([token])).item())
                right[place].append(int(row.argmax()) == token)
                if int(row.argmax()) != token and others:
                    other[place].append(any(place < len(o) and int(row.argmax()) == o[place] for o in others))
print(f"{probe}: {len(documents)} {split} documents with {facts} fact(s); example answer tokens "
      f"{c.tokenizer.convert_ids_to_tokens(encode(c.tokenizer, answer_text(documents[0]['questions'][0]['answer'])))}")
for place in sorted(nll):
    print(f"  answer token {place + 1}: {len(nll[place])} questions, loss {sum(nll[place]) / len(nll[place]):.2f} nats, "
          f"teacher-forced right {sum(right[place]) / len(right[place]):.0%}"
          + (f"; of the wrong, the other number's digit at this place {sum(other[place])}/{len(other[place])}"
             if other[place] else ""))
print(f"  greedy answers with the asked number: {sum(exact)}/{len(exact)}")
