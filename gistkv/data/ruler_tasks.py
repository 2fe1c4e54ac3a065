"""RULER's generator of each task kind (niah, variable tracking, common/frequent words, qa), one sample at a
haystack size; gistkv.data.ruler searches the size that fits the length. Port notes are in gistkv.data.ruler.

    sampler = Sampler("vt", max_seq_length=1024, tokenizer=tokenizer, seed=42); text, context, answers = sampler.make(40, 0)
"""

from __future__ import annotations

import random
import re
import string
import uuid

import numpy as np

from gistkv.core.prompt import encode
from gistkv.data.ruler_source import essay_words, qa_set, task_table, word_list
from gistkv.errors import GistkvError

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
DEPTHS = [int(depth) for depth in np.round(np.linspace(0, 100, num=40, endpoint=True))]


class Sampler:
    """One task at one length: RULER's generator for it, with its own seeded RNG."""

    def __init__(self, name: str, max_seq_length: int, tokenizer, seed: int):
        self.config = task_table()[name]
        self.name, self.kind, self.args = name, self.config["task"], dict(self.config["args"])
        self.max_seq_length, self.tokenizer = max_seq_length, tokenizer
        self.rng = random.Random(f"{seed}-{name}-{max_seq_length}")
        self.template = self.config["template"] + self.config.get("answer_prefix", "")
        self.generate_tokens = self.config["tokens_to_generate"]

    def tokens(self, text: str) -> int:
        return len(encode(self.tokenizer, text))

    # ---- niah ----
    def random_value(self, kind: str) -> str:
        if kind == "numbers":
            return str(self.rng.randint(10 ** 6, 10 ** 7 - 1))
        if kind == "words":      # uniform over RULER's adjective-noun pairs, without listing all 10 M of them
            return f"{self.rng.choice(word_set('adjectives'))}-{self.rng.choice(word_set('nouns'))}"
        if kind == "uuids":
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        raise GistkvError(f"RULER niah: needle type {kind!r} unknown.")

    def niah(self, size: int) -> tuple[str, str, list[str]]:
        args = self.args
        num_k = max(args["num_needle_k"], args["num_needle_q"])
        needle = "One of the special magic {type_needle_v} for {key} is: {value}."
        keys, values, needles = [], [], []
        for _ in range(num_k):
            keys.append(self.random_value(args["type_needle_k"]))
            values.append([self.random_value(args["type_needle_v"]) for _ in range(args["num_needle_v"])])
            needles += [needle.format(type_needle_v=args["type_needle_v"], key=keys[-1], value=value)
                        for value in values[-1]]
        self.rng.shuffle(needles)
        if args["type_haystack"] == "essay":
            sentences = split_sentences(" ".join(essay_words()[:size]).strip())
            cuts = [0] + sorted(int(len(sentences) * depth / 100) for depth in self.rng.sample(DEPTHS, len(needles)))
            cuts.append(len(sentences))
            pieces = []
            for index in range(1, len(cuts)):
                pieces.append(" ".join(sentences[cuts[index - 1]:cuts[index]]))
                if index - 1 < len(needles):
                    pieces.append(needles[index - 1])
            context = " ".join(pieces)
        else:
            if args["type_haystack"] == "repeat":
                lines = [NOISE] * size
            else:
                lines = [needle.format(type_needle_v=args["type_needle_v"], key=self.random_value(args["type_needle_k"]),
                                       value=self.random_value(args["type_needle_v"])) for _ in range(size)]
            for index, element in zip(sorted(self.rng.sample(range(size), len(needles)), reverse=True), needles):
                lines.insert(index, element)
            context = "\n".join(lines)
        asked = self.rng.sample(range(num_k), args["num_needle_q"])
        queries = [keys[index] for index in asked]
        answers = [value for index in asked for value in values[index]]
        query = ", ".join(queries[:-1]) + ", and " + queries[-1] if len(queries) > 1 else queries[0]
        template, type_v = self.template, args["type_needle_v"]
        if args["num_needle_q"] * args["num_needle_v"] == 1:
            for old, new in (("Some", "A"), ("are all", "is"), ("are", "is"), ("answers", "answer")):
                template = template.replace(old, new)
            type_v = type_v[:-1]
        return template.format(type_needle_v=type_v, context=context, query=query), context, answers

    # ---- variable tracking ----
    def chains(self, hops: int, letters: int) -> tuple[list[str], list[str]]:
        names = []
        while len(names) < hops + 1:
            name = "".join(self.rng.choices(string.ascii_uppercase, k=letters))
            if name not in names:
                names.append(name)
        chain = [f"VAR {names[0]} = {self.rng.randint(10000, 99999)}"]
        chain += [f"VAR {names[j + 1]} = VAR {names[j]} " for j in range(hops)]
        return names, chain

    def variable_tracking(self, size: int, icl: bool = False) -> tuple[str, str, list[str]]:
        hops = min(10, self.args["num_hops"]) if icl else self.args["num_hops"]
        names, chain = self.chains(hops, 3 if icl else 5)
        sentences = [NOISE + "\n"] * size
        if len(sentences) <= len(chain):      # RULER: too few lines for the chain, so cut them into sentences
            sentences = [piece + "." if piece.strip() else piece for line in sentences for piece in line.split(".")]
        if len(sentences) <= len(chain):
            raise GistkvError(f"RULER vt: {size} noise lines cannot hold a chain of {len(chain)} assignments; raise "
                              f"ruler.context_lengths above {self.max_seq_length} tokens.")
        positions = sorted(self.rng.sample(range(len(sentences)), len(chain)))
        for offset, (position, link) in enumerate(zip(positions, chain)):
            sentences.insert(position + offset, link)
        context = " ".join(sentences).replace(". \n", ".\n")
        value = chain[0].split("=")[-1].strip()
        return self.template.format(context=context, query=value, num_v=hops + 1), context, names

    def icl_example(self) -> str:
        """RULER's one worked vt example (3-letter names, fitted to 500 tokens), made once per task and length."""
        if not hasattr(self, "_icl"):
            shot = Sampler(self.name, 500, self.tokenizer, self.rng.randint(0, 10 ** 9))
            size = 5
            while shot.fits_icl(size + 5):
                size += 5
            text, _, names = shot.variable_tracking(size, icl=True)
            self._icl = text + " " + " ".join(names) + "\n\n"
        return self._icl

    def fits_icl(self, size: int) -> bool:
        text, _, names = self.variable_tracking(size, icl=True)
        return self.tokens(text + " " + " ".join(names)) + self.generate_tokens <= self.max_seq_length

    def with_example(self, text: str) -> str:
        """RULER puts a copy of the worked example, its answer renamed, before the task (vt's add_fewshot)."""
        example = self.icl_example()
        cut = example.index(self.config["answer_prefix"][-10:]) + 10
        for name in example[cut:].split():
            example = example.replace(name, "".join(self.rng.choices(string.ascii_uppercase, k=len(name))))
        return " " + example + "\n\n" + text

    # ---- common words ----
    def common_words(self, size: int) -> tuple[str, str, list[str]]:
        words = cwe_words(self.rng)
        count = self.args["num_cw"]

        def example(num_words, common_repeats, uncommon_repeats):
            chosen = self.rng.sample(words, num_words)
            listed = chosen[:count] * common_repeats + chosen[count:] * uncommon_repeats
            self.rng.shuffle(listed)
            return " ".join(f"{i + 1}. {word}" for i, word in enumerate(listed)), chosen[:count]

        if self.max_seq_length < 4096:
            shown, shown_answer = example(20, 3, 1)
            context, answer = example(size, 6, 1)
        else:
            shown, shown_answer = example(40, 10, 3)
            context, answer = example(size, self.args["freq_cw"], self.args["freq_ucw"])
        lead = self.template.format(context=shown, query="") + " ".join(
            f"{i + 1}. {word}" for i, word in enumerate(shown_answer))
        return lead + "\n" + self.template.format(context=context, query=""), context, answer

    # ---- frequent words ----
    def frequent_words(self, size: int) -> tuple[str, str, list[str]]:
        from scipy.special import zeta

        vocab_size, alpha = self.max_seq_length // 50, self.args["alpha"]
        vocab = set()
        while len(vocab) < vocab_size:
            vocab.add("".join(self.rng.choices(string.ascii_lowercase, k=6)))
        vocab = sorted(vocab)
        self.rng.shuffle(vocab)
        vocab[0] = "..."        # RULER: the most frequent "word" is noise
        ranks = np.arange(1, len(vocab) + 1)
        counts = (size * (ranks ** -alpha) / zeta(alpha)).astype(int)
        words = [word for word, times in zip(vocab, counts) for _ in range(times)]
        self.rng.shuffle(words)
        context = " ".join(words)
        return self.template.format(context=context, query=""), context, vocab[1:4]

    # ---- qa ----
    def qa(self, size: int, index: int = 0) -> tuple[str, str, list[str]]:
        questions, documents = qa_set(self.args["dataset"])
        question = questions[index]
        chosen = list(question["context"])
        more = question.get("more_context", [])
        if size - len(chosen) > len(more):
            others = [i for i in range(len(documents)) if i not in chosen + more]
            chosen += more + self.rng.sample(others, max(0, size - len(chosen) - len(more)))
        else:
            chosen += self.rng.sample(more, max(0, size - len(chosen)))
        texts = [documents[i] for i in chosen]
        self.rng.shuffle(texts)
        context = "\n\n".join(f"Document {i + 1}:\n{text}" for i, text in enumerate(texts))
        return self.template.format(context=context, query=question["query"]), context, question["outputs"]

    def make(self, size: int, index: int) -> tuple[str, str, list[str]]:
        if self.kind == "niah":
            return self.niah(size)
        if self.kind == "variable_tracking":
            text, context, answer = self.variable_tracking(size)
            return self.with_example(text), context, answer
        if self.kind == "common_words_extraction":
            return self.common_words(size)
        if self.kind == "freq_words_extraction":
            return self.frequent_words(size)
        return self.qa(size, index)


def split_sentences(text: str) -> list[str]:
    """Sentences of the essays (RULER uses nltk's punkt, which it would download)."""
    return [part for part in re.split(r"(?<=[.!?])\s+", text) if part]


def word_set(name: str) -> list[str]:
    return sorted(set(word_list(name)))


def cwe_words(rng: random.Random) -> list[str]:
    words = sorted(set(word_list("nouns") + word_list("adjectives") + word_list("verbs")))
    random.Random(42).shuffle(words)      # RULER shuffles its word list once with its seed
    return words
