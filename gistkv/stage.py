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


@contextlib.contextmanager
def stage_errors() -> Iterator[None]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")        # nothing in the pipeline may reach a hub by accident
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
