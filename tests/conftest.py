import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny import tiny_llama, tiny_tokenizer  # noqa: E402


@pytest.fixture
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture
def tiny_model(tokenizer):
    return tiny_llama(len(tokenizer))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A prepared base folder (models/base layout) pointing at a saved tiny random Llama."""
    from gistkv.core.model import ModelParams, prepare_base
    from tiny import save_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    source = save_tiny_model(root / "tiny-llama")
    params = ModelParams(source=str(source), embedded_package="unused", embedded_gguf="unused", embedded_sha256="0",
                         dtype="float32", load_in_4bit=False, device="cpu")
    prepare_base(params, root / "base", root / "downloads")
    return root / "base"


@pytest.fixture(scope="session")
def smollm2_base():
    """The real SmolLM2 base folder: the repo's models/base if prepared, else prepared once into a cache."""
    from gistkv.core.model import BASE_META, prepare_base
    from gistkv.params import load_section
    from gistkv.core.model import ModelParams

    repo = Path(__file__).parent.parent
    if (repo / "models/base" / BASE_META).exists():
        return repo / "models/base"
    cache = Path(os.environ.get("GISTKV_TEST_CACHE", Path.home() / ".cache" / "gistkv-tests"))
    base = cache / "base"
    if not (base / BASE_META).exists():
        params = load_section(repo / "params.yaml", "model", ModelParams)
        prepare_base(params, base, repo / "models/downloads")
    return base
