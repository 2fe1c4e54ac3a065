"""The picture of the gist attention mask that training writes (metrics/train/gist_mask.png).

Kept apart from the report's plots so that a change to a report figure never retrains a model.

    plot_mask(allowed, [("context", 0, 12), ("gist", 12, 22)], "gist_mask.png")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gistkv.reporting.png import plt, save


def plot_mask(allowed: np.ndarray, blocks: list[tuple[str, int, int]], path: str | Path) -> None:
    """``allowed`` (T, T) booleans; ``blocks`` (label, start, end) along both axes."""
    fig, axis = plt.subplots(figsize=(6, 6))
    axis.imshow(allowed, cmap="Blues", interpolation="nearest")
    for label, start, end in blocks:
        middle = (start + end - 1) / 2
        axis.axhline(start - 0.5, color="red", linewidth=0.8)
        axis.axvline(start - 0.5, color="red", linewidth=0.8)
        axis.text(middle, -1.5, label, ha="center", va="bottom", fontsize=9)
        axis.text(-1.5, middle, label, ha="right", va="center", fontsize=9, rotation=90)
    axis.set_xlabel("key position (attended to)")
    axis.set_ylabel("query position (attending)")
    axis.set_title("gist attention mask (blue = may attend)", pad=22)
    fig.tight_layout()
    save(fig, path)
