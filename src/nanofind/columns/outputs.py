"""Files of ``nanofind columns``: the column table, the overlay and the summary figure."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

#: Columns of ``<stem>_columns.csv``; ``frame`` and ``track_id`` only for stacks.
CSV_COLUMNS = ("x_A", "y_A", "x_px", "y_px", "intensity", "peak", "height", "element", "confidence", "edge",
               "surface")
STACK_COLUMNS = ("frame", "track_id")


def columns_csv_text(rows: list[dict], *, stack: bool) -> str:
    """CSV text of column rows (dicts keyed by :data:`CSV_COLUMNS`, plus frame and track_id for a stack).

    Missing values (no height without a height model) are empty cells.
    """
    header = (STACK_COLUMNS if stack else ()) + CSV_COLUMNS
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        cells = []
        for name in header:
            value = row.get(name)
            if value is None or (isinstance(value, float) and not np.isfinite(value)):
                cells.append("")
            elif isinstance(value, (bool, np.bool_)):
                cells.append(str(int(value)))
            elif isinstance(value, (float, np.floating)):
                cells.append(f"{value:.4f}" if name.endswith(("_A", "_px")) else f"{value:.6g}")
            else:
                cells.append(str(value))
        writer.writerow(cells)
    return text.getvalue()


def write_overlay(image: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, values: np.ndarray, path: Path, *,
                  radius_px: float) -> Path:
    """The image in grey with a dot on every column, coloured by ``values`` (viridis, low to high).

    Positions are in px with the origin at the top-left corner of the top-left pixel.
    """
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    from nanofind.analyze.outputs import _stretch  # the grey scale of every overlay

    rgb = np.repeat(_stretch(image)[:, :, None], 3, axis=2)
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    lo, hi = (np.percentile(values[finite], (1, 99)) if finite.any() else (0.0, 1.0))
    scaled = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    colours = (colormaps["viridis"](np.where(finite, scaled, 0))[:, :3] * 255).astype(np.uint8)
    r = max(1.5, radius_px)
    for x, y, colour in zip(x_px, y_px, colours, strict=True):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in colour))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def write_summary_figure(path: Path, *, intensity: np.ndarray, neighbour_A: np.ndarray, counts_per_frame: list[int],
                         drift_A: np.ndarray | None, title: str) -> Path:
    """Histograms of column intensity and nearest-neighbour distance (Å).

    For a stack, also the columns found and the drift against frame.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stack = len(counts_per_frame) > 1
    fig, axes = plt.subplots(1, 3 if stack else 2, figsize=(12 if stack else 8.5, 3.4))
    axes[0].hist(intensity, bins=40, color="#3b6ea8")
    axes[0].set(xlabel="column intensity (image units)", ylabel="columns")
    axes[1].hist(neighbour_A[np.isfinite(neighbour_A)], bins=40, color="#a85b3b")
    axes[1].set(xlabel="nearest-neighbour distance (Å)", ylabel="columns")
    if stack:
        frames = np.arange(len(counts_per_frame))
        axes[2].plot(frames, counts_per_frame, "o-", color="#333333", ms=3)
        axes[2].set(xlabel="frame", ylabel="columns found")
        axes[2].xaxis.get_major_locator().set_params(integer=True)
        if drift_A is not None:
            twin = axes[2].twinx()
            twin.plot(frames, drift_A[:, 0], color="#3b6ea8", label="drift x")
            twin.plot(frames, drift_A[:, 1], color="#a85b3b", label="drift y")
            twin.set_ylabel("drift since frame 0 (Å)")
            twin.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_track_figure(path: Path, series: np.ndarray, *, quantity: str, title: str) -> Path:
    """Surface columns through a series, as an image.

    One row per track (ordered around the particle), one column per frame, coloured by
    ``quantity`` (``series``: tracks × frames, NaN where a track is absent).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tracks, frames = series.shape
    fig, ax = plt.subplots(figsize=(min(12, 3 + 0.12 * frames), min(9, 2 + 0.06 * tracks)))
    shown = ax.imshow(np.ma.masked_invalid(series), aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set(xlabel="frame", ylabel="surface column (around the particle)", title=title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    fig.colorbar(shown, ax=ax, label=quantity)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
