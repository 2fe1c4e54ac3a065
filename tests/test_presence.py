"""gistkv.core.presence: the passage index stored beside the gist, and the gate `gistkv ask` and gist/gated apply."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file, save_file

from gistkv.core.compressor import untrained_compressor
from gistkv.core.kv import GistKV, compress
from gistkv.core.presence import PresenceIndex, passages, passes, question_language
from gistkv.errors import GistkvError

REPO = Path(__file__).parent.parent
TEXT = "The grass is green. The pass key is 12345. Remember it. The sun is yellow."


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A stand-in embedder: hashed word counts, so shared words make a cosine (no model to load)."""
    vectors = np.zeros((len(texts), 4096), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().strip(".?!").replace("?", " ").replace(".", " ").split():
            vectors[row, int.from_bytes(hashlib.sha256(word.encode()).digest()[:2], "big") % 4096] += 1
    return vectors


def test_sentences_are_passages_and_long_ones_overlapping_windows():
    words = [f"w{i}" for i in range(30)]
    found = passages("Short one. " + " ".join(words) + ". Last!")
    assert found[0] == "Short one." and found[-1] == "Last!"
    windows = found[1:-1]
    assert windows[0].split() == words[:12] and windows[1].split() == words[6:18]     # half overlap
    assert set(" ".join(windows).replace(".", "").split()) == set(words)             # every word in a window
    assert passages("  \n ") == []


def test_the_int8_index_keeps_the_cosines():
    index = PresenceIndex.build(TEXT, bag_of_words)
    assert index.vectors.dtype.is_floating_point is False and index.vectors.shape == (4, 4096)
    exact = bag_of_words(passages(TEXT))
    exact /= np.linalg.norm(exact, axis=1, keepdims=True)
    question = bag_of_words(["What is the pass key?"])[0]
    best = float((exact @ (question / np.linalg.norm(question))).max())
    assert abs(index.similarity("What is the pass key?", bag_of_words) - best) < 0.01
    with pytest.raises(GistkvError, match="no words"):
        PresenceIndex.build(" ", bag_of_words)
    assert PresenceIndex.build("Birds sang. " * 40 + TEXT, bag_of_words).vectors.shape[0] == 5    # repeats stored once


def test_the_gate_passes_a_question_about_the_document_and_declines_one_about_something_else():
    index = PresenceIndex.build(TEXT, bag_of_words)
    similarity, passed = passes(index, "What is the pass key?", bag_of_words, 0.36)
    assert passed and similarity > 0.36
    similarity, passed = passes(index, "Which invoice total was billed?", bag_of_words, 0.36)
    assert not passed and similarity < 0.36
    assert question_language("패스키는 무엇입니까?") == "ko" and question_language("What is the pass key?") == "en"


def test_the_index_is_stored_in_the_artifact_and_a_damaged_one_is_refused(tiny_model, tokenizer, tmp_path):
    compressor = untrained_compressor(tiny_model, tokenizer, num_gist_tokens=4)
    gist_kv = compress(compressor, TEXT)
    gist_kv.save(tmp_path / "plain.safetensors")
    assert PresenceIndex.of(GistKV.load(tmp_path / "plain.safetensors", compressor)) is None
    index = PresenceIndex.build(TEXT, bag_of_words)
    index.attach(gist_kv)
    gist_kv.save(tmp_path / "indexed.safetensors")
    loaded_kv = GistKV.load(tmp_path / "indexed.safetensors", compressor)
    loaded = PresenceIndex.of(loaded_kv)
    assert loaded is not None and (loaded.vectors == index.vectors).all()
    assert loaded.similarity("What is the pass key?", bag_of_words) == index.similarity("What is the pass key?", bag_of_words)
    assert loaded_kv.metadata["presence_embedder"] == "universal-sentence-encoder-multilingual-3"
    other = GistKV.load(tmp_path / "indexed.safetensors", compressor)
    other.metadata["presence_embedder"] = "all-MiniLM-L6-v2"
    with pytest.raises(GistkvError, match="x.safetensors: its passage index was made by embedder 'all-MiniLM-L6-v2'"):
        PresenceIndex.of(other, "x.safetensors")
    tensors = load_file(tmp_path / "indexed.safetensors")
    del tensors["presence.scales"]
    save_file(tensors, tmp_path / "damaged.safetensors", metadata=loaded_kv.metadata)
    with pytest.raises(GistkvError, match="damaged.safetensors: its passage index is damaged"):
        PresenceIndex.of(GistKV.load(tmp_path / "damaged.safetensors", compressor), tmp_path / "damaged.safetensors")


def test_the_cli_default_is_the_threshold_chosen_on_dev():
    from gistkv.cli import MIN_PRESENCE

    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    assert params["evaluate"]["gate"]["min_similarity"] == MIN_PRESENCE
