"""The report's PNG figures: heatmaps, accuracy vs compression with intervals, bars, curves.

Fixed sizes, and files written by gistkv.reporting.png (no timestamps in the metadata), so the same
numbers give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gistkv.reporting.png import plt, save


def plot_heatmap(grid: np.ndarray, depths: list[float], lengths: list[int], title: str, path: str | Path) -> None:
    """Accuracy (depth rows x length columns); NaN cells are shown blank."""
    fig, axis = plt.subplots(figsize=(1.6 + 1.1 * len(lengths), 1.4 + 0.55 * len(depths)))
    image = axis.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    axis.set_xticks(range(len(lengths)), [str(length) for length in lengths])
    axis.set_yticks(range(len(depths)), [f"{depth:.0%}" for depth in depths])
    for row in range(grid.shape[0]):
        for column in range(grid.shape[1]):
            if not np.isnan(grid[row, column]):
                axis.text(column, row, f"{grid[row, column]:.2f}", ha="center", va="center", fontsize=8)
    axis.set_xlabel("context length (tokens)")
    axis.set_ylabel("needle depth")
    axis.set_title(title, fontsize=10)
    fig.colorbar(image, ax=axis, fraction=0.05)
    fig.tight_layout()
    save(fig, path)


def plot_points(points: list[tuple[str, float, float]], xlabel: str, ylabel: str, title: str, path: str | Path,
                logx: bool = True) -> None:
    fig, axis = plt.subplots(figsize=(6, 4))
    for label, x, y in points:
        axis.scatter([x], [y], s=40)
        axis.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if logx:
        axis.set_xscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_ylim(-0.05, 1.05)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def plot_bars(labels: list[str], series: dict[str, list[float]], title: str, path: str | Path) -> None:
    fig, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 4))
    axes = np.atleast_1d(axes)
    for axis, (name, values) in zip(axes, series.items()):
        axis.bar(range(len(labels)), values, color="tab:blue")
        axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        axis.set_title(name, fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)


def plot_curve(values: dict[str, list[tuple[float, float]]], title: str, path: str | Path, ylabel: str = "loss") -> None:
    fig, axis = plt.subplots(figsize=(6, 4))
    for name, pairs in values.items():
        if pairs:
            axis.plot([p[0] for p in pairs], [p[1] for p in pairs], marker="o", markersize=3, label=name)
    axis.set_xlabel("step")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend()
    axis.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def plot_tradeoff(series: dict[str, list[tuple[float, float, float, float]]], title: str, path: str | Path) -> None:
    """Accuracy vs compression: per series (x, accuracy, ci_low, ci_high) points joined by a line, with
    Wilson intervals as error bars (x on a log scale)."""
    fig, axis = plt.subplots(figsize=(7, 4.5))
    for name, points in series.items():
        points = sorted(points)
        xs = [point[0] for point in points]
        ys = [point[1] for point in points]
        errors = [[point[1] - point[2] for point in points], [point[3] - point[1] for point in points]]
        axis.errorbar(xs, ys, yerr=errors, marker="o", markersize=4, capsize=3, label=name,
                      linestyle="-" if len(points) > 1 else "none")
    axis.set_xscale("log")
    axis.set_xlabel("compression: document tokens / tokens the answer reads")
    axis.set_ylabel("accuracy (fact in the document)")
    axis.set_ylim(-0.05, 1.05)
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save(fig, path)


def plot_group_heatmaps(grids: dict[str, np.ndarray], depths: list[float], lengths: list[int], title: str,
                        path: str | Path) -> None:
    """One accuracy heatmap (depth rows x length columns) per group, side by side; NaN cells blank."""
    fig, axes = plt.subplots(1, len(grids), figsize=(1.2 + 2.4 * len(grids), 1.6 + 0.5 * len(depths)), squeeze=False)
    for axis, (group, grid) in zip(axes[0], grids.items()):
        axis.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        axis.set_xticks(range(len(lengths)), [str(length) for length in lengths], fontsize=8)
        axis.set_yticks(range(len(depths)), [f"{depth:.0%}" for depth in depths], fontsize=8)
        for row in range(grid.shape[0]):
            for column in range(grid.shape[1]):
                if not np.isnan(grid[row, column]):
                    axis.text(column, row, f"{grid[row, column]:.2f}", ha="center", va="center", fontsize=7)
        axis.set_title(group, fontsize=9)
        axis.set_xlabel("tokens", fontsize=8)
    axes[0][0].set_ylabel("needle depth")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)
