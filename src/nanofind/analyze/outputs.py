"""The analysis stage's files beside the report: masks, label images, overlays, the size histogram, particles.csv."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nanofind.analyze.table import DEFECT_DTYPES, PARTICLE_DTYPES, SOURCE_DTYPES, ParticleTable, as_table

#: Particles as a table or as row dicts (``ParticleTable.rows()``, resume records).
Particles = ParticleTable | Iterable[Mapping[str, Any]]

#: Outline colours of the overlays: ordinary, cut by the image edge, agglomerate.
COLOURS = {"particle": (255, 60, 40), "edge": (255, 210, 0), "agglomerate": (230, 60, 255)}
#: The first columns of particles.csv, always there; a table's further columns (a later stage's) follow them.
CSV_COLUMNS = tuple(SOURCE_DTYPES) + tuple(PARTICLE_DTYPES) + tuple(DEFECT_DTYPES)


def _stretch(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, (0.5, 99.5))
    return (np.clip((image - lo) / (hi - lo if hi > lo else 1.0), 0, 1) * 255).astype(np.uint8)


def write_overlay(image: np.ndarray, labels: np.ndarray, particles: Particles, path: Path) -> Path:
    """The micrograph in grey with each particle's outline and number (colours: :data:`COLOURS`).

    ``particles``: the image's particles (ids are ``labels`` values; numbers are drawn at ``centroid_*_px``).
    """
    from PIL import Image, ImageDraw
    from skimage.segmentation import find_boundaries

    table = as_table(particles)
    grey = _stretch(image)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    edges = find_boundaries(labels, mode="inner")
    if max(labels.shape) > 1024:  # keep outlines visible when the page scales a large image down
        from scipy.ndimage import binary_dilation

        edges = binary_dilation(edges, iterations=max(1, max(labels.shape) // 1024))
    colour_of = np.zeros((int(labels.max()) + 1, 3), np.uint8)  # by particle id: one lookup for every outline
    if len(table):
        ids = np.asarray(table["particle_id"], np.int64)
        colour_of[ids] = COLOURS["particle"]
        colour_of[ids[np.asarray(table["touches_edge"], bool)]] = COLOURS["edge"]
        colour_of[ids[np.asarray(table["agglomerate"], bool)]] = COLOURS["agglomerate"]
    rgb[edges] = colour_of[labels[edges]]
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    size = max(14, max(labels.shape) // 28)
    try:
        from PIL import ImageFont

        font = ImageFont.load_default(size=size)
    except (TypeError, OSError):
        font = None
    for r in table.rows():
        x, y = r["centroid_x_px"], r["centroid_y_px"]
        draw.text((x, y), str(r["particle_id"]), fill=(255, 255, 255), font=font, anchor="mm", stroke_width=2,
                  stroke_fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def write_histogram(particles: Particles, path: Path) -> Path:
    """Histogram of equivalent diameters (nm where every image's pixel size is known, else px).

    Particles cut by the image edge are left out (their size is not known).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    table = as_table(particles)
    nm = len(table) > 0 and not np.isnan(np.asarray(table["equivalent_diameter_nm"], float)).any()
    if len(table):
        whole = ~np.asarray(table["touches_edge"], bool)
        d = np.asarray(table["equivalent_diameter_nm" if nm else "equivalent_diameter_px"], float)[whole].tolist()
    else:
        d = []
    fig = Figure(figsize=(6, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if d:
        ax.hist(d, bins=min(30, max(5, len(d) // 3)), color="#3b75af", edgecolor="white")
        ax.axvline(float(np.mean(d)), color="#c0392b", linestyle="--", label=f"mean {np.mean(d):.2f}")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no particles away from the image edges", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel=f"equivalent diameter ({'nm' if nm else 'px'})", ylabel="particles",
           title=f"Particle sizes (n = {len(d)}, edge-cut particles excluded)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def write_label_images(labels: np.ndarray, directory: Path, stem: str) -> None:
    """``<stem>_mask.png`` (0/255) and ``<stem>_labels.png`` (16-bit particle ids) into ``directory``."""
    from PIL import Image

    Image.fromarray(((labels > 0) * 255).astype(np.uint8)).save(directory / f"{stem}_mask.png")
    Image.fromarray(np.clip(labels, 0, 65535).astype(np.uint16)).save(directory / f"{stem}_labels.png")


def write_particles_csv(particles: Particles, path: Path) -> Path:
    """particles.csv: :data:`CSV_COLUMNS`, then any further columns of the table; missing values empty."""
    return as_table(particles).to_csv(path, columns=CSV_COLUMNS)
