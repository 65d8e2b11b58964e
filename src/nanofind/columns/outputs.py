"""Files of ``nanofind columns``: the column table, the overlay, the height map and the figures."""

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


def write_height_tiff(path: Path, height_maps: list[np.ndarray], pixel_size_A: float) -> Path:
    """The most likely height per pixel (atoms, uint8, 0 off the columns), one page per frame.

    The pixel size is written as ImageJ resolution tags in nm, so that Fiji and tifffile read it.
    """
    import tifffile

    from nanofind._files import write_atomic

    data = np.stack([np.asarray(m, dtype=np.uint8) for m in height_maps])
    per_nm = 1.0 / (pixel_size_A / 10.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: tifffile.imwrite(tmp, data[0] if len(data) == 1 else data, imagej=True,
                                                    resolution=(per_nm, per_nm), metadata={"unit": "nm"}))
    return path


def write_overlay(image: np.ndarray, x_px: np.ndarray, y_px: np.ndarray, values: np.ndarray, path: Path, *,
                  radius_px: float, label: str | None = None) -> Path:
    """The image in grey with a dot on every column, coloured by ``values`` (viridis, low to high).

    Positions are in px with the origin at the top-left corner of the top-left pixel. With a
    ``label`` (heights) the colours span the values' full range, and a colour key with the label
    is drawn in the top-left corner.
    """
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    from nanofind.analyze.outputs import _stretch  # the grey scale of every overlay

    rgb = np.repeat(_stretch(image)[:, :, None], 3, axis=2)
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    percentiles = (0, 100) if label else (1, 99)
    lo, hi = (np.percentile(values[finite], percentiles) if finite.any() else (0.0, 1.0))
    scaled = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    colours = (colormaps["viridis"](np.where(finite, scaled, 0))[:, :3] * 255).astype(np.uint8)
    r = max(1.5, radius_px)
    for x, y, colour in zip(x_px, y_px, colours, strict=True):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in colour))
    if label and finite.any():
        key = (colormaps["viridis"](np.linspace(0, 1, 100))[:, :3] * 255).astype(np.uint8)
        for i, colour in enumerate(key):
            draw.rectangle((4 + i, 4, 5 + i, 14), fill=tuple(int(c) for c in colour))
        draw.text((4, 16), f"{label}: {lo:g} to {hi:g}", fill=(255, 255, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def write_summary_figure(path: Path, *, intensity: np.ndarray, neighbour_A: np.ndarray, counts_per_frame: list[int],
                         drift_A: np.ndarray | None, title: str, heights: np.ndarray | None = None,
                         surface_distance_A: np.ndarray | None = None) -> Path:
    """Histograms of column intensity and nearest-neighbour distance (Å).

    With ``heights`` (a height model's), the intensity histogram gives way to a height histogram
    and, with ``surface_distance_A``, the thickness profile toward the surface: mean height (and
    spread) against the distance to the nearest surface column, in 1 Å bins. For a stack, also the
    columns found and the drift against frame.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stack = len(counts_per_frame) > 1
    profile = heights is not None and surface_distance_A is not None
    panels = 2 + stack + profile
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4))
    if heights is None:
        axes[0].hist(intensity, bins=40, color="#3b6ea8")
        axes[0].set(xlabel="column intensity (image units)", ylabel="columns")
    else:
        top = int(np.max(heights)) if len(heights) else 1
        axes[0].hist(heights, bins=np.arange(0.5, top + 1.5), color="#3b6ea8")
        axes[0].set(xlabel="height (atoms per column)", ylabel="columns")
    axes[1].hist(neighbour_A[np.isfinite(neighbour_A)], bins=40, color="#a85b3b")
    axes[1].set(xlabel="nearest-neighbour distance (Å)", ylabel="columns")
    if profile:
        ax = axes[2]
        distance = np.asarray(surface_distance_A, dtype=np.float64)
        good = np.isfinite(distance)
        bins = np.floor(distance[good]).astype(int)
        if len(bins):
            edges = np.arange(bins.max() + 1)
            mean = np.array([heights[good][bins == b].mean() if (bins == b).any() else np.nan for b in edges])
            spread = np.array([heights[good][bins == b].std() if (bins == b).any() else np.nan for b in edges])
            ax.errorbar(edges + 0.5, mean, yerr=spread, fmt="o-", color="#333333", ms=3, capsize=2)
        ax.set(xlabel="distance to the surface (Å)", ylabel="mean height (atoms)", title="thickness profile")
    if stack:
        frames = np.arange(len(counts_per_frame))
        axes[-1].plot(frames, counts_per_frame, "o-", color="#333333", ms=3)
        axes[-1].set(xlabel="frame", ylabel="columns found")
        axes[-1].xaxis.get_major_locator().set_params(integer=True)
        if drift_A is not None:
            twin = axes[-1].twinx()
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


def write_track_figure(path: Path, series: np.ndarray, *, quantity: str, title: str, lines: bool = False) -> Path:
    """Surface columns through a series, as an image.

    One row per track (ordered around the particle), one column per frame, coloured by
    ``quantity`` (``series``: tracks × frames, NaN where a track is absent). With ``lines``
    (heights), a second panel draws each track's value against frame and their mean.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tracks, frames = series.shape
    width, height = min(12, 3 + 0.12 * frames), min(9, 2 + 0.06 * tracks)
    if lines:
        fig, (ax, line_ax) = plt.subplots(1, 2, figsize=(2 * width, max(height, 3.4)))
    else:
        fig, ax = plt.subplots(figsize=(width, height))
    shown = ax.imshow(np.ma.masked_invalid(series), aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set(xlabel="frame", ylabel="surface column (around the particle)", title=title)
    ax.xaxis.get_major_locator().set_params(integer=True)
    fig.colorbar(shown, ax=ax, label=quantity)
    if lines:
        steps = np.arange(frames)
        for row in series:
            line_ax.plot(steps, row, color="#888888", lw=0.6, alpha=0.5)
        counted = np.isfinite(series).sum(axis=0)
        mean = np.where(counted > 0, np.nansum(series, axis=0) / np.maximum(counted, 1), np.nan)
        line_ax.plot(steps, mean, "o-", color="#a8323b", ms=3, label="mean of the surface columns")
        line_ax.set(xlabel="frame", ylabel=quantity, title="surface columns against frame")
        line_ax.xaxis.get_major_locator().set_params(integer=True)
        line_ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
