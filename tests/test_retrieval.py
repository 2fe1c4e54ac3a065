"""The retrieval baseline: token chunks, real embedders (USE reads Korean, MiniLM English), one document at a time."""

import numpy as np
import pytest

from gistkv.data.haystack import load_sentences
from gistkv.errors import GistkvError
from gistkv.evaluation.retrieval import Retriever, VectorsFunction, chunk_token_spans, load_embedding_function

# chromadb's in-memory client is one per process: each embedder gets its own chunk size (collection).
USE_CHUNK, MINILM_CHUNK, FAKE_CHUNK = 47, 41, 13


def haystack(source: str, needle: str, start: int = 0) -> str:
    """60 consecutive sentences of real prose with the needle in the middle (no repeated filler)."""
    sentences = load_sentences(source)[start:start + 60]
    return " ".join(sentences[:30]) + " " + needle + " " + " ".join(sentences[30:])


@pytest.fixture(scope="module")
def use_retriever(tmp_path_factory):
    from tiny import tiny_tokenizer

    embedder = load_embedding_function("use", tmp_path_factory.mktemp("embedder"), threads=1)
    retriever = Retriever(embedder, tiny_tokenizer())
    retriever.add("en-1", haystack("pydoc", "The pass key is 48213. Remember it. 48213 is the pass key."), USE_CHUNK)
    retriever.add("en-2", haystack("pydoc", "The pass key is 77310. Remember it. 77310 is the pass key.", 200),
                  USE_CHUNK)
    retriever.add("ko-1", haystack("kolaw", "패스키는 48213입니다.", 100), USE_CHUNK)
    return retriever


def test_chunk_spans_cover_everything_with_overlap():
    spans = chunk_token_spans(100, 32, 8)
    assert spans == [(0, 32), (24, 56), (48, 80), (72, 100)]
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end - start == 8
    assert chunk_token_spans(20, 32, 8) == [(0, 20)]


@pytest.mark.parametrize("chunk, overlap", [(16, 16), (16, -1), (0, 0)])
def test_bad_overlap_is_a_one_line_error(chunk, overlap):
    with pytest.raises(GistkvError, match=r"evaluate\.rag: chunk overlap must be in \[0, chunk_tokens\)") as raised:
        chunk_token_spans(100, chunk, overlap)
    assert "\n" not in str(raised.value)


def test_finds_the_english_needle_among_prose(use_retriever):
    hits = use_retriever.retrieve("en-1", "What is the pass key?", USE_CHUNK, top_k=1)
    assert len(hits) == 1 and "48213" in hits[0]["text"]


def test_finds_the_korean_needle_among_prose(use_retriever):
    hits = use_retriever.retrieve("ko-1", "패스키는 무엇입니까?", USE_CHUNK, top_k=1)
    assert len(hits) == 1 and "48213" in hits[0]["text"]


def test_hits_are_of_the_asked_document_in_document_order(use_retriever):
    hits = use_retriever.retrieve("en-2", "What is the pass key?", USE_CHUNK, top_k=4)
    assert len(hits) == 4 and {hit["doc_id"] for hit in hits} == {"en-2"}
    assert not any("48213" in hit["text"] for hit in hits)      # en-1's key is never handed to en-2's reader
    assert any("77310" in hit["text"] for hit in hits)
    indices = [hit["chunk_index"] for hit in hits]
    assert indices == sorted(indices) and len(set(indices)) == 4


def test_drop_removes_only_that_documents_chunks(use_retriever):
    count = use_retriever.add("en-3", haystack("pydoc", "The pass key is 55123.", 400), USE_CHUNK)
    collection = use_retriever.collection(USE_CHUNK)
    before = collection.count()
    use_retriever.drop("en-3")
    assert count > 1 and collection.count() == before - count
    assert use_retriever.retrieve("en-3", "What is the pass key?", USE_CHUNK, top_k=2) == []
    assert use_retriever.retrieve("en-1", "What is the pass key?", USE_CHUNK, top_k=1)


def test_minilm_loads_and_retrieves_english(tmp_path, tokenizer):
    embedder = load_embedding_function("minilm", tmp_path, threads=1)
    retriever = Retriever(embedder, tokenizer)
    retriever.add("mini-1", haystack("pydoc", "The pass key is 48213. Remember it. 48213 is the pass key.", 600),
                  MINILM_CHUNK)
    hits = retriever.retrieve("mini-1", "What is the pass key?", MINILM_CHUNK, top_k=1)
    assert len(hits) == 1 and "48213" in hits[0]["text"]
    retriever.drop("mini-1")


def test_unknown_embedder_is_named(tmp_path):
    with pytest.raises(GistkvError, match="evaluate.rag.embedder: 'bert' is not one of use, minilm"):
        load_embedding_function("bert", tmp_path)


def test_two_retrievers_do_not_share_documents(tokenizer):
    constant = VectorsFunction("constant", lambda texts: [np.full(8, 8 ** -0.5, dtype=np.float32) for _ in texts])
    first, second = Retriever(constant, tokenizer), Retriever(constant, tokenizer)
    first.add("shared-id", "The grass is green. The sky is blue. " * 4, FAKE_CHUNK)
    try:
        assert second.retrieve("shared-id", "grass", FAKE_CHUNK, top_k=2) == []
    finally:
        first.drop("shared-id")
