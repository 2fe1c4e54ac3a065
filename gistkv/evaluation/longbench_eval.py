"""LongBench v1 evaluation: the official prompts, generation lengths, metrics and middle truncation.

A prompt is split at ``{context}`` so every method reads the same text: ``full`` reads
prefix + context + suffix, ``rag`` retrieved chunks in place of the context, and ``gist``
compresses prefix + context and answers the suffix (question and instruction) from the gist KV.

    from gistkv.evaluation.longbench_eval import TASKS, build_prompt, score
    prefix, context, suffix = build_prompt("qasper", record)
"""

from __future__ import annotations

import re

from gistkv.errors import GistkvError
from gistkv.evaluation.scoring import normalize_answer, qa_f1, split_words

# From LongBench's config/dataset2prompt.json and dataset2maxlen.json (THUDM/LongBench, v1).
PROMPTS = {
    "narrativeqa": "You are given a story, which can be either a novel or a movie script, and a question. Answer the question asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: {context}\n\nNow, answer the question based on the story asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",
    "qasper": "You are given a scientific article and a question. Answer the question as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write \"unanswerable\". If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\nArticle: {context}\n\n Answer the question based on the above article as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write \"unanswerable\". If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",
    "multifieldqa_en": "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following question based on the above text, only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
    "multifieldqa_zh": "阅读以下文字并用中文简短回答：\n\n{context}\n\n现在请基于上面的文章回答下面的问题，只告诉我答案，不要输出任何其他字词。\n\n问题：{input}\n回答：",
    "hotpotqa": "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
    "gov_report": "You are given a report by a government agency. Write a one-page summary of the report.\n\nReport:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:",
    "passage_retrieval_en": "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which paragraph the abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\nPlease enter the number of the paragraph that the abstract is from. The answer format must be like \"Paragraph 1\", \"Paragraph 2\", etc.\n\nThe answer is: ",
}
MAX_NEW_TOKENS = {"narrativeqa": 128, "qasper": 128, "multifieldqa_en": 64, "multifieldqa_zh": 64, "hotpotqa": 32,
                  "gov_report": 512, "passage_retrieval_en": 32}
METRIC = {"narrativeqa": "qa_f1", "qasper": "qa_f1", "multifieldqa_en": "qa_f1", "multifieldqa_zh": "qa_f1",
          "hotpotqa": "qa_f1", "gov_report": "rouge_l", "passage_retrieval_en": "retrieval"}
TASKS = tuple(PROMPTS)


def build_prompt(task: str, record: dict) -> tuple[str, str, str]:
    """(prefix, context, suffix) of the task's official prompt."""
    if task not in PROMPTS:
        raise GistkvError(f"download_longbench.tasks: no prompt for {task!r} (known: {', '.join(TASKS)}).")
    prefix, suffix = PROMPTS[task].split("{context}")
    return prefix, record["context"], suffix.replace("{input}", record["input"] or "")


def truncate_middle(ids: list[int], max_tokens: int) -> list[int]:
    """LongBench's truncation: keep the first and last halves when a prompt is too long."""
    if len(ids) <= max_tokens:
        return ids
    half = max_tokens // 2
    return ids[:half] + ids[len(ids) - (max_tokens - half):]


def rouge_l(prediction: str, reference: str) -> float:
    from rouge_score import rouge_scorer

    class Words:                       # rouge-score's default tokenizer drops non-Latin text
        def tokenize(self, text):
            return split_words(re.sub(r"[^\w\s]", " ", text.lower()))

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=Words()).score(reference, prediction)["rougeL"].fmeasure


def retrieval_score(prediction: str, reference: str) -> float:
    """LongBench: share of the numbers in the answer that are the right paragraph."""
    wanted = re.findall(r"Paragraph (\d+)", reference)
    numbers = re.findall(r"\d+", prediction)
    if not wanted or not numbers:
        return 0.0
    return sum(number == wanted[0] for number in numbers) / len(numbers)


def score(task: str, prediction: str, answers: list[str]) -> float:
    """Best score over the reference answers, as LongBench does."""
    metric = {"qa_f1": qa_f1, "rouge_l": rouge_l, "retrieval": retrieval_score}[METRIC[task]]
    if task in ("narrativeqa", "qasper", "multifieldqa_en", "hotpotqa", "multifieldqa_zh"):
        prediction = prediction.lstrip("\n").split("\n")[0]    # LongBench keeps the first line for QA
    return max((metric(prediction, answer) for answer in answers), default=0.0)


__all__ = ["TASKS", "MAX_NEW_TOKENS", "build_prompt", "truncate_middle", "score", "normalize_answer"]


def to_document(task: str, record: dict, index: int, tokenizer, max_context_tokens: int) -> dict:
    """A LongBench record as an evaluation document: prefix, (middle-truncated) context, and its one question."""
    from gistkv.core.prompt import encode

    prefix, context, suffix = build_prompt(task, record)
    context_ids = truncate_middle(encode(tokenizer, context), max_context_tokens)
    return {"id": f"{task}-{record.get('_id') or index}", "task": task, "lang": record.get("language", ""),
            "target_tokens": max_context_tokens, "prefix": prefix, "context": tokenizer.decode(context_ids),
            "questions": [{"question": record.get("input") or "", "query": suffix, "task": task,
                           "answers": record.get("answers") or [], "max_new_tokens": MAX_NEW_TOKENS[task]}]}


def score_longbench(prediction: str, question: dict) -> dict:
    value = score(question["task"], prediction, question["answers"])
    return {"score": value, "correct": value == 1.0}
