"""Labelled images for training and evaluation, from nanofind datasets and folders of real micrographs.

Two kinds of source are accepted:

- a nanofind dataset (``.h5`` from ``nanofind simulate``): every sample's image, particle mask and
  pixel size;
- a folder of labelled micrographs, paired by the one rule of
  :func:`nanofind.datasets.labelled.labelled_pairs`: ``img_<id>.<ext>`` with ``mask_<id>.png`` (the
  layout ``nanofind dataset export`` writes), or ``<stem>_mask`` / ``<stem>_label`` masks (non-zero =
  particle), and optionally ``meta_<id>.json`` holding ``pixel_size`` in Å. Images may be any format
  :func:`nanofind.io.read_micrograph` reads.

Images are normalised once on loading (:func:`nanofind.learn.preprocess.normalise`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanofind.datasets.labelled import labelled_pairs, meta_pixel_size_A, read_mask
from nanofind.errors import NanofindInputError
from nanofind.io.micrograph import read_micrograph
from nanofind.learn.metrics import DOMAINS
from nanofind.learn.preprocess import normalise


@dataclass
class LabelledImage:
    """One normalised image and its particle mask (rows along y)."""

    image: np.ndarray  #: float32, normalised
    mask: np.ndarray  #: uint8, 1 on particles
    pixel_size_A: float | None  #: Å, None when unknown
    source: str  #: file (and sample index) it came from
    domain: str  #: "simulated" or "real"
    raw: np.ndarray | None = None  #: the image before normalisation (kept for the baselines)
    instance: np.ndarray | None = None  #: int32 particle id per pixel (datasets of format 2), else None
    particles: list | None = None  #: ground-truth record per particle id (datasets), else None
    params: dict | None = None  #: how a simulated sample was made (dose, optics, …), else None


def load_folder(folder: str | Path, keep_raw: bool = False) -> list[LabelledImage]:
    """Every labelled micrograph of a folder (see the module docstring for the layout)."""
    items = []
    for image_path, mask_path, meta_path in labelled_pairs(folder):
        micrograph = read_micrograph(image_path)
        if micrograph.array.ndim != 2:
            raise NanofindInputError("labelled images must be 2D", str(image_path))
        pixel = meta_pixel_size_A(meta_path) or micrograph.pixel_size_A
        mask = read_mask(mask_path, micrograph.array.shape)
        items.append(LabelledImage(normalise(micrograph.array), mask, pixel, str(image_path), "real",
                                   micrograph.array if keep_raw else None))
    return items


def load_dataset(path: str | Path, keep_raw: bool = False, limit: int | None = None) -> list[LabelledImage]:
    """Samples of a nanofind dataset file (the first ``limit`` when given)."""
    from nanofind.datasets.store import DatasetReader

    items = []
    with DatasetReader(path) as reader:
        n = len(reader) if limit is None else min(limit, len(reader))
        for k in range(n):
            s = reader.sample(k)
            pixel = s.params.get("pixel_size_A")
            domain = "real" if s.params.get("kind") == "labelled" else "simulated"
            from_scene = any(r.get("source") == "scene" for r in s.particles or [])
            items.append(LabelledImage(normalise(s.image), (s.mask > 0).astype(np.uint8),
                                       float(pixel) if pixel else None, f"{path}#{s.index}", domain,
                                       s.image if keep_raw else None,
                                       # instances derived from a version-1 mask merge touching particles
                                       instance=s.instance if from_scene else None,
                                       particles=s.particles if from_scene else None,
                                       params=s.params if keep_raw else None))
    return items


def load_source(path: str | Path, keep_raw: bool = False) -> list[LabelledImage]:
    """A dataset file or a folder of labelled micrographs."""
    path = Path(path)
    if path.is_dir():
        return load_folder(path, keep_raw)
    if path.is_file():
        return load_dataset(path, keep_raw)
    raise NanofindInputError("no such dataset file or folder", str(path))


def split(items: list, validation: float | tuple[int, int], seed: int) -> tuple[list, list]:
    """Deterministic (train, validation) split of one source.

    ``validation`` is a fraction held out at random, or ``(fold, folds)`` for k-fold
    cross-validation: fold ``fold`` (0-based) of a seeded permutation is held out.
    """
    order = np.random.default_rng(seed).permutation(len(items))
    if isinstance(validation, tuple):
        fold, folds = validation
        held = set(np.array_split(order, folds)[fold].tolist())
    else:
        n_val = int(round(validation * len(items)))
        if validation > 0 and len(items) > 1:
            n_val = min(max(n_val, 1), len(items) - 1)
        held = set(order[:n_val].tolist())
    train = [x for k, x in enumerate(items) if k not in held]
    val = [x for k, x in enumerate(items) if k in held]
    return train, val


def describe(items: list[LabelledImage]) -> dict:
    """Counts and pixel sizes of a list of labelled images, for model cards."""
    out = {}
    for domain in DOMAINS:
        sel = [x for x in items if x.domain == domain]
        if not sel:
            continue
        pixels = [x.pixel_size_A for x in sel if x.pixel_size_A]
        out[domain] = {"images": len(sel), "pixels": int(sum(x.mask.size for x in sel)),
                       "particle_fraction": round(float(np.mean([x.mask.mean() for x in sel])), 4),
                       "pixel_size_A": [round(min(pixels), 4), round(max(pixels), 4)] if pixels else None,
                       "sources": sorted({x.source.split("#")[0] for x in sel})}
    return out
