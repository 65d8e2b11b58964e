"""Crops around segmented particles: the one way regions are cut for defect classification.

``nanofind analyze`` cuts every particle it finds with :func:`region_crops`, and the classifier's
training data is cut with the same function from the same kind of label image (the segmentation
model's prediction on simulated micrographs), so that the classifier sees in training what it
sees in use (issue 14).

A crop is the square around the region's bounding box, grown by :data:`PAD_FRACTION` of the
box's larger side on every side and to at least :data:`MIN_CROP_PX`; parts outside the image are
filled with the crop's median. Rows are y.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Margin around a region's bounding box, as a fraction of the box's larger side.
PAD_FRACTION = 0.15
#: Smallest crop side, px (the seed's crops and ``nanofind classify`` refuse smaller ones).
MIN_CROP_PX = 32
#: Largest crop side, px: bigger regions are cut at this size around their centre (a micrograph
#: of one huge particle is no nanoparticle crop; the limit bounds memory and time).
MAX_CROP_PX = 512


class Crop(NamedTuple):
    """One region's crop (float32 image, rows are y) and where it came from."""

    image: np.ndarray
    label: int  #: the region's value in the label image (0 for crops not cut from a label image)
    row0: int  #: top row of the crop in the image (may be negative: padded)
    col0: int  #: left column


def crop_window(bbox: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int]:
    """(top row, left column, side) of the square crop around ``bbox`` = (row0, col0, row1, col1)."""
    r0, c0, r1, c1 = bbox
    side = max(r1 - r0, c1 - c0)
    side = int(np.clip(round(side * (1 + 2 * PAD_FRACTION)), MIN_CROP_PX, MAX_CROP_PX))
    cy, cx = (r0 + r1) / 2, (c0 + c1) / 2
    return int(round(cy - side / 2)), int(round(cx - side / 2)), side


def cut(image: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """The ``side``² window at (top, left) of ``image``, filled with the window's median outside it."""
    ny, nx = image.shape
    out = np.empty((side, side), dtype=np.float32)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + side, ny), min(left + side, nx)
    inside = image[r0:r1, c0:c1]
    out[...] = np.median(inside) if inside.size else 0.0
    out[r0 - top:r1 - top, c0 - left:c1 - left] = inside
    return out


def region_crops(image: np.ndarray, labels: np.ndarray) -> list[Crop]:
    """One crop per labelled region (label > 0), in label order.

    Parameters
    ----------
    image : ndarray (ny, nx)
        The micrograph.
    labels : ndarray of int (ny, nx)
        Label image of the regions (``nanofind.analyze.measure.find_particles``), 0 background.
    """
    from scipy import ndimage

    image = np.asarray(image, dtype=np.float32)
    labels = np.asarray(labels)
    crops = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        top, left, side = crop_window((sl[0].start, sl[1].start, sl[0].stop, sl[1].stop), labels.shape)
        crops.append(Crop(cut(image, top, left, side), k, top, left))
    return crops
