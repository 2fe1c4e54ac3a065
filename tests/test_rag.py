"""ChromaDB + the packaged MiniLM: persistence, filtering, and finding the needle chunk."""

import pytest

from gistkv.errors import GistkvError
from gistkv.rag import RagIndex, chunk_token_spans


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    from gistkv.embedder import load_embedder

    return load_embedder(tmp_path_factory.mktemp("embedder"))


def haystack_with_needle() -> str:
    filler = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
    return filler * 12 + "The pass key is 48213. Remember it. 48213 is the pass key. " + filler * 12


def test_chunk_spans_cover_everything_with_overlap():
    spans = chunk_token_spans(100, 32, 8)
    assert spans[0] == (0, 32) and spans[1][0] == 24 and spans[-1][1] == 100
    with pytest.raises(GistkvError, match="rag_chunk_overlap"):
        chunk_token_spans(100, 16, 16)


def test_retrieves_the_needle_chunk_and_persists(tmp_path, embedder, tokenizer):
    index = RagIndex(tmp_path / "index", "niah_test", embedder, tokenizer, chunk_tokens=48, overlap=8)
    index.add("doc-1", haystack_with_needle())
    index.add("doc-2", "Completely different text about violins and harbors. " * 20)
    hits = index.retrieve("doc-1", "What is the pass key?", top_k=2)
    assert any("48213" in hit["text"] for hit in hits)
    assert all(hit["context_id"] == "doc-1" for hit in hits)
    assert [hit["chunk_index"] for hit in hits] == sorted(hit["chunk_index"] for hit in hits)
    count = index.collection.count()
    del index
    reopened = RagIndex(tmp_path / "index", "niah_test", embedder, tokenizer, chunk_tokens=48, overlap=8)
    assert reopened.collection.count() == count
    assert any("48213" in hit["text"] for hit in reopened.retrieve("doc-1", "What is the pass key?", top_k=2))


def test_korean_goes_through_the_same_path(tmp_path, embedder, tokenizer):
    index = RagIndex(tmp_path / "index", "niah_ko", embedder, tokenizer, chunk_tokens=48, overlap=8)
    index.add("ko-1", "풀은 초록색이다. 하늘은 파랗다. " * 20 + "패스키는 12345입니다. " + "태양은 노랗다. " * 20)
    assert len(index.retrieve("ko-1", "패스키는 무엇입니까?", top_k=3)) == 3
