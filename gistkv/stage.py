"""What every stage script shares: one-line errors, quiet libraries, seeded RNGs.

    from gistkv.stage import stage_errors
    with stage_errors():
        ...   # a GistkvError becomes "error: <one line>" and exit code 1, no traceback
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
from typing import Iterator

from gistkv.errors import GistkvError


def keep_hub_offline() -> None:
    """HF_HUB_OFFLINE=1 unless the caller chose otherwise: nothing in the pipeline may reach a hub by
    accident. huggingface_hub reads the variable once, when it is imported, and a stage may already
    have imported it (through transformers), so its constant follows the variable too."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = os.environ["HF_HUB_OFFLINE"].upper() in constants.ENV_VARS_TRUE_VALUES


@contextlib.contextmanager
def stage_errors() -> Iterator[None]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    keep_hub_offline()
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # chromadb
    try:
        yield
    except GistkvError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
