"""One training sample: an image with its ground truth (simulated or labelled), as stored in dataset files.

Real data (labelled micrographs, and version-1 dataset files) carry only a particle mask; for them
the instance map is the mask's connected components and the particle records hold only what the
mask tells (see :func:`records_from_instances`), marked ``"source": "mask"``. Simulated samples
carry the scene's own instances and records (``"source": "scene"``, see
:mod:`nanofind.scene.particle_records`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Columns of the per-sample column table.
COLUMN_FIELDS = ("x_A", "y_A", "atoms", "grain")
#: Pixel connectivity of the instances derived from a mask: 8 neighbours, so particles that meet only
#: at a corner count as one (as in the mask, nothing separates them).
MASK_INSTANCE_CONNECTIVITY = 2


@dataclass
class Sample:
    """One image and its ground truth (arrays have rows along y).

    ``instance`` and ``particles`` default to what the mask alone tells (connected components and
    records with only their size and edge contact).
    """

    index: int
    image: np.ndarray  #: float32 detector counts (or the micrograph as read)
    mask: np.ndarray  #: uint8, 1 on particles
    grain: np.ndarray  #: int16 grain id, -1 off particles
    column_height: np.ndarray  #: uint16 particle atoms per column near each pixel
    columns: np.ndarray  #: float32 (n, 4): x, y (Å from pixel (0, 0)'s outer corner), atoms, grain
    params: dict = field(default_factory=dict)  #: everything that made the sample
    instance: np.ndarray | None = None  #: int32 particle id per pixel (the records' ``id``), 0 off particles
    particles: list[dict] | None = None  #: per-particle ground-truth records, JSON-able

    def __post_init__(self):
        if self.instance is None:
            self.instance = instances_from_mask(self.mask)
        if self.particles is None:
            self.particles = records_from_instances(self.instance, pixel_size_A=self.params.get("pixel_size_A"))


def instances_from_mask(mask: np.ndarray) -> np.ndarray:
    """Connected components (8-connected) of a particle mask: int32 ids 1…n, 0 off particles."""
    from scipy.ndimage import generate_binary_structure, label

    structure = generate_binary_structure(2, MASK_INSTANCE_CONNECTIVITY)
    ids, _ = label(np.asarray(mask) > 0, structure=structure)
    return ids.astype(np.int32)


def footprint_facts(instance: np.ndarray, pixel_size_A: float | None) -> dict[int, dict]:
    """Per instance id: ``area_px``, ``equivalent_diameter_nm``, ``centroid_px`` and ``cut_by_edge``.

    ``equivalent_diameter_nm`` is the diameter of the disc with the footprint's area in the image
    (None when the pixel size is unknown); ``centroid_px`` is [row, column]; ``cut_by_edge`` says
    the footprint reaches the first or last row or column.
    """
    instance = np.asarray(instance)
    ids = np.unique(instance)
    ids = ids[ids > 0]
    if not len(ids):
        return {}
    flat = instance.ravel()
    size = int(ids.max()) + 1
    area = np.bincount(flat, minlength=size)
    rows, cols = np.indices(instance.shape)
    row_sum = np.bincount(flat, weights=rows.ravel(), minlength=size)
    col_sum = np.bincount(flat, weights=cols.ravel(), minlength=size)
    border = np.concatenate([instance[0], instance[-1], instance[:, 0], instance[:, -1]])
    on_edge = set(np.unique(border).tolist())
    facts = {}
    for i in ids.tolist():
        d_nm = (float(np.sqrt(4 * area[i] / np.pi) * pixel_size_A / 10) if pixel_size_A else None)
        facts[i] = {"area_px": int(area[i]), "equivalent_diameter_nm": d_nm,
                    "centroid_px": [float(row_sum[i] / area[i]), float(col_sum[i] / area[i])],
                    "cut_by_edge": i in on_edge}
    return facts


def records_from_instances(instance: np.ndarray, pixel_size_A: float | None = None) -> list[dict]:
    """Particle records of real data: ``id`` and the footprint facts of each instance, ``source: "mask"``."""
    return [{"id": i, "source": "mask", **facts} for i, facts in footprint_facts(instance, pixel_size_A).items()]
