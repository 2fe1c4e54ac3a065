"""Deterministic PNG files from matplotlib figures: the Agg backend, fixed DPI, no timestamps or version stamps.

    from gistkv.reporting.png import plt, save
    fig, axis = plt.subplots(); ...; save(fig, "figure.png")
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gistkv.io import atomic_path  # noqa: E402

DPI = 100
PNG_METADATA = {"Software": None}   # no matplotlib version stamp: bytes depend on the data only


def save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA)
    plt.close(fig)
