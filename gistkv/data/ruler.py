"""RULER's synthetic tasks, generated in the model's own tokens: a port of its generators, on its own data.

The 13 tasks of RULER's ``synthetic.yaml`` (niah single 1-3, multikey 1-3, multivalue, multiquery;
variable tracking; common and frequent words extraction; qa on SQuAD and HotpotQA) at each
``max_seq_length`` (input + tokens to generate), with RULER's templates, needle wording, depths, length
search, vt's worked example and scoring (``gistkv.evaluation.scoring.ruler_string_match``). Differences, all for
running offline on a CPU: sentences of the essays are split by a regular expression instead of nltk's
punkt (which it would download); each sample draws from a seeded ``random.Random`` of ours; answers are
capped at ``ruler.max_new_tokens`` tokens (RULER allows niah 128, cwe 120) and stop at a newline; a qa
sample whose question's own paragraphs alone exceed the length is kept (RULER would search forever) and
its ``context_tokens`` say how long it is.
RULER is evaluation-only: nothing here is ever training data.

    documents = generate_task("niah_single_2", max_seq_length=2048, samples=2, tokenizer=tokenizer, seed=42)
"""

from __future__ import annotations

from dataclasses import dataclass

from gistkv.data.ruler_source import essay_words, task_table
from gistkv.data.ruler_tasks import Sampler
from gistkv.params import require

METRICS = {"niah": "all", "variable_tracking": "all", "common_words_extraction": "all",
           "freq_words_extraction": "all", "qa": "part"}


@dataclass
class RulerParams:
    tasks: list[str]               # RULER task names (synthetic.yaml)
    context_lengths: list[int]     # max_seq_length: input + tokens to generate, in the base model's tokens
    samples_per_length: list[int]  # samples per task at each length
    max_new_tokens: int            # cap on RULER's tokens_to_generate
    seed: int

    def validate(self, where: str) -> None:
        known = task_table()
        for task in self.tasks:
            require(task in known, f"{where}.tasks", f"unknown RULER task {task!r} (known: {', '.join(known)}).")
        require(len(self.context_lengths) == len(self.samples_per_length) > 0, f"{where}.samples_per_length",
                "must give one count per context length.")
        require(min(self.context_lengths) >= 512, f"{where}.context_lengths", "must be at least 512 tokens.")
        require(self.max_new_tokens > 0, f"{where}.max_new_tokens", "must be positive.")


# How RULER grows each task's haystack while searching for the length (its `incremental`).
def increment(sampler: Sampler) -> int:
    kind, args = sampler.kind, sampler.args
    if kind == "niah":
        if args["type_haystack"] == "essay":
            return 500
        return 5 if sampler.max_seq_length < 4096 else 25
    return {"variable_tracking": 10, "common_words_extraction": 10, "freq_words_extraction": 10 * 32, "qa": 10}[kind]


def fits(sampler: Sampler, size: int, index: int = 0) -> bool:
    text, _, answer = sampler.make(size, index)
    return sampler.tokens(text + " " + " ".join(answer)) + sampler.generate_tokens <= sampler.max_seq_length


def haystack_size(sampler: Sampler) -> int:
    """The largest haystack (in RULER's units) whose sample fits: RULER's step search, then a bisection."""
    step = increment(sampler)
    if not fits(sampler, step):
        low, high = 1, step
    else:
        size = step
        while fits(sampler, size + step):
            size += step
            if sampler.kind == "niah" and sampler.args["type_haystack"] == "essay" and size >= len(essay_words()):
                return len(essay_words())
        low, high = size, size + step
    while high - low > max(1, step // 16):
        middle = (low + high) // 2
        low, high = (middle, high) if fits(sampler, middle) else (low, middle)
    return low


def generate_task(name: str, max_seq_length: int, samples: int, tokenizer, seed: int, max_new_tokens: int) -> list[dict]:
    sampler = Sampler(name, max_seq_length, tokenizer, seed)
    size = haystack_size(sampler)
    documents = []
    for index in range(samples):
        used = size
        while True:
            text, context, answers = sampler.make(used, index)
            if sampler.tokens(text) + sampler.generate_tokens <= max_seq_length or used <= 1:
                break
            used = max(1, used - max(1, increment(sampler) // 16))
        start = text.rindex(context)
        prefix, suffix = text[:start], text[start + len(context):]
        answer_prefix = sampler.config.get("answer_prefix", "").split("{")[0].strip()
        question = suffix.split(answer_prefix)[0].strip() if answer_prefix else suffix.strip()
        documents.append({
            "id": f"ruler-{name}-{max_seq_length}-{index}", "task": name, "lang": "en", "target_tokens": max_seq_length,
            "prefix": prefix, "context": context, "context_tokens": sampler.tokens(prefix + context),
            "questions": [{"question": question, "query": suffix, "answers": [str(a) for a in answers],
                           "metric": METRICS[sampler.kind], "task": name,
                           "max_new_tokens": min(sampler.generate_tokens, max_new_tokens)}]})
    return documents


def generate(params: RulerParams, tokenizer) -> list[dict]:
    return [document for name in params.tasks
            for length, count in zip(params.context_lengths, params.samples_per_length)
            for document in generate_task(name, length, count, tokenizer, params.seed, params.max_new_tokens)]


