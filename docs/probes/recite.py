"""Ask a probe's gist to recite its first held-out dev documents (the training-only recital question), beside the
fact each document holds: does the gist keep what kind of fact it stored, or only the digits?

    python docs/probes/recite.py p-decline-recall 8     # a run trained with niah.train.recall_fraction > 0
"""
import sys

from gistkv.core.compressor import load_compressor
from gistkv.core.kv import answer, compress
from gistkv.data.needles import recall_questions
from gistkv.training.train_records import validation_documents

probe, count = sys.argv[1], int(sys.argv[2])
c = load_compressor(f"/work/probes/{probe}/gist", base_dir="/work/main/models/base")
for document in validation_documents(f"/work/probes/{probe}/niah", ["en", "ko"], count):
    kv = compress(c, document["context"])
    print(" | ".join(f"{fact['family']}: {fact['needle']}" for fact in document["facts"]))
    print("  ->", answer(c, kv, recall_questions(document["lang"])[0], 40).strip())
