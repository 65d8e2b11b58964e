"""From a particle mask to measured particles: cleaning, splitting touching particles, measurements, flags.

Conventions: arrays have rows along y; lengths are reported in nm when the pixel size is known
(columns ending in ``_nm``, empty otherwise) and always in pixels (``_px``). ``orientation_deg`` is
the angle of the major axis from the image x axis (columns), counter-clockwise as displayed
(y pointing up the screen), in (−90°, 90°].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label, regionprops
from skimage.morphology import reconstruction
from skimage.segmentation import watershed

#: The measurements of a particle, in the order of the particle table.
PARTICLE_COLUMNS = ("particle_id", "area_px", "area_nm2", "equivalent_diameter_px", "equivalent_diameter_nm",
                    "major_axis_px", "minor_axis_px", "major_axis_nm", "minor_axis_nm", "aspect_ratio",
                    "orientation_deg", "circularity", "solidity", "centroid_x_px", "centroid_y_px", "centroid_x_nm",
                    "centroid_y_nm", "mean_intensity", "std_intensity", "confidence", "touches_edge", "agglomerate")


@dataclass(frozen=True)
class CleaningSettings:
    """Mask clean-up and particle splitting (lengths in nm, used when the pixel size is known).

    opening_nm / closing_nm: radii of the morphological opening (removes specks and thin bridges)
    and closing (fills notches). min_area_nm2: smaller regions are dropped. split: separate
    touching particles with a distance-transform watershed; a neck splits two particles when
    each side's distance maximum rises ``split_depth`` (fraction of the larger radius) above it.
    agglomerate_solidity: regions less convex than this are flagged as agglomerates, as are
    regions wider than ``max_diameter_nm``. The ``*_px`` values apply when the pixel size is unknown.
    """

    opening_nm: float = 0.2
    closing_nm: float = 0.2
    min_area_nm2: float = 1.0
    split: bool = True
    split_depth: float = 0.3
    agglomerate_solidity: float = 0.85
    max_diameter_nm: float = 20.0
    opening_px: float = 2.0
    closing_px: float = 2.0
    min_area_px: float = 40.0

    def to_dict(self) -> dict:
        """JSON-able record."""
        return asdict(self)


#: Largest cleaning radius, pixels: 0.2 nm is 64 px only at 0.03 Å per pixel, a pixel size the scale
#: guard already flags as implausible; the cap keeps the closing's padding small whatever the header says.
MAX_CLEANING_RADIUS_PX = 64


def _radius_px(nm: float, px: float, pixel_size_A: float | None) -> int:
    radius = int(round(nm * 10 / pixel_size_A)) if pixel_size_A else int(round(px))
    return min(radius, MAX_CLEANING_RADIUS_PX)


def _within(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ``radius`` (Euclidean) of a True pixel of ``mask``: dilation by ``disk(radius)``."""
    if not mask.any():
        return np.zeros_like(mask)
    distance = ndi.distance_transform_edt(~mask)
    return distance * distance <= radius * radius + 0.5  # squared distances are whole numbers


def erode_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by ``skimage.morphology.disk(radius)``, outside the image counting as background.

    Equal to ``scipy.ndimage.binary_erosion(mask, disk(radius))`` but through one Euclidean distance
    transform, so its time and memory do not grow with the radius (the structuring element of a
    radius met at an implausible pixel size would not fit in memory).
    """
    padded = np.pad(np.asarray(mask, bool), 1)
    return ~_within(~padded, radius)[1:-1, 1:-1]


def dilate_disk(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by ``disk(radius)`` (as ``scipy.ndimage.binary_dilation``), at any radius's cost."""
    return _within(np.asarray(mask, bool), radius)


def clean_mask(mask: np.ndarray, pixel_size_A: float | None, settings: CleaningSettings = CleaningSettings()
               ) -> np.ndarray:
    """Opening, closing, hole filling and removal of regions below the minimum area."""
    mask = np.asarray(mask, bool)
    r_open = _radius_px(settings.opening_nm, settings.opening_px, pixel_size_A)
    r_close = _radius_px(settings.closing_nm, settings.closing_px, pixel_size_A)
    if r_open > 0:
        mask = dilate_disk(erode_disk(mask, r_open), r_open)
    if r_close > 0:
        # pad so that closing does not glue particles to the image border
        padded = np.pad(mask, r_close, mode="edge")
        mask = erode_disk(dilate_disk(padded, r_close), r_close)[r_close:-r_close, r_close:-r_close]
    mask = ndi.binary_fill_holes(mask)
    min_area = settings.min_area_nm2 * 100 / pixel_size_A**2 if pixel_size_A else settings.min_area_px
    labels = label(mask)
    areas = np.bincount(labels.ravel())
    keep = areas >= min_area
    keep[0] = False
    return keep[labels]


def split_particles(mask: np.ndarray, depth: float = 0.3) -> np.ndarray:
    """Label image of particles, touching ones separated by a distance-transform watershed.

    Within each connected region the distance to the background is flooded from its domes. A
    dome marks a particle when it rises above the neck to its neighbour by ``depth`` × its own
    height (its inscribed radius), or by ``depth`` × the region's largest distance: a neck splits
    two particles, also a small one on a large one, only when it is markedly thinner than both;
    an elongated or faceted particle, or a ragged outline, stays whole.
    """
    regions = label(mask)
    out = np.zeros(mask.shape, np.int32)
    next_id = 1
    for region in regionprops(regions):
        r0, c0, r1, c1 = region.bbox
        sub = np.pad(region.image, 1)
        dist = ndi.distance_transform_edt(sub)
        h = max(1.0, depth * float(dist.max()))
        # One marker per dome that rises enough above its saddle: the connected caps of the h-dome
        # transform (h-maxima on a float image can break one dome's top into several equal points,
        # which must stay one marker). A cap whose top stays below h is a dome of exactly that
        # rise; it still marks a particle when the rise is `depth` of its own height (a small
        # particle on a big one), not when it is a bump of a ragged outline, which the watershed
        # then gives to the neighbouring dome.
        dome = dist - reconstruction(dist - h, dist, method="dilation")
        caps = label((dome > 1e-6) & sub)
        index = np.arange(1, caps.max() + 1)
        rise = np.asarray(ndi.maximum(dome, caps, index=index))
        height = np.asarray(ndi.maximum(dist, caps, index=index))
        keep = np.concatenate([[False], rise >= np.minimum(h, np.maximum(1.0, depth * height)) - 1e-6])
        markers = label(keep[caps])
        if markers.max() <= 1:
            pieces = sub.astype(np.int32)
        else:
            pieces = watershed(-dist, markers, mask=sub)
        pieces = pieces[1:-1, 1:-1]
        n = int(pieces.max())
        view = out[r0:r1, c0:c1]
        view[pieces > 0] = pieces[pieces > 0] + next_id - 1
        next_id += n
    return out


def measure_particles(labels: np.ndarray, image: np.ndarray | None = None, probability: np.ndarray | None = None,
                      pixel_size_A: float | None = None, settings: CleaningSettings = CleaningSettings()
                      ) -> list[dict]:
    """One dict per labelled particle, keys :data:`PARTICLE_COLUMNS` (units: see the module docstring)."""
    nm = pixel_size_A / 10 if pixel_size_A else None
    rows = []
    ny, nx = labels.shape
    for region in regionprops(labels):
        r0, c0, r1, c1 = region.bbox
        pix = region.coords
        values = image[pix[:, 0], pix[:, 1]] if image is not None else None
        perimeter = region.perimeter
        circularity = 4 * math.pi * region.area / perimeter**2 if perimeter > 0 else 1.0
        orientation = 90.0 + math.degrees(region.orientation)
        orientation = orientation - 180.0 if orientation > 90.0 else orientation
        d_px = region.equivalent_diameter_area
        touches = r0 == 0 or c0 == 0 or r1 == ny or c1 == nx
        too_big = nm is not None and d_px * nm > settings.max_diameter_nm
        cy, cx = region.centroid
        rows.append({
            "particle_id": int(region.label), "area_px": int(region.area),
            "area_nm2": _scaled(region.area, nm, 2), "equivalent_diameter_px": round(d_px, 3),
            "equivalent_diameter_nm": _scaled(d_px, nm), "major_axis_px": round(region.axis_major_length, 3),
            "minor_axis_px": round(region.axis_minor_length, 3), "major_axis_nm": _scaled(region.axis_major_length, nm),
            "minor_axis_nm": _scaled(region.axis_minor_length, nm),
            "aspect_ratio": round(region.axis_major_length / max(region.axis_minor_length, 1e-9), 4),
            "orientation_deg": round(orientation, 2), "circularity": round(min(circularity, 1.0), 4),
            "solidity": round(float(region.solidity), 4),
            "centroid_x_px": round(cx + 0.5, 2), "centroid_y_px": round(cy + 0.5, 2),
            "centroid_x_nm": _scaled(cx + 0.5, nm), "centroid_y_nm": _scaled(cy + 0.5, nm),
            "mean_intensity": round(float(values.mean()), 5) if values is not None else None,
            "std_intensity": round(float(values.std()), 5) if values is not None else None,
            "confidence": round(float(probability[pix[:, 0], pix[:, 1]].mean()), 4) if probability is not None
            else None,
            "touches_edge": bool(touches),
            "agglomerate": bool(region.solidity < settings.agglomerate_solidity or too_big),
        })
    return rows


def _scaled(value: float, nm_per_px: float | None, power: int = 1):
    return None if nm_per_px is None else round(float(value) * nm_per_px**power, 4)


def summarise(rows: list[dict], labels: np.ndarray | None = None) -> dict:
    """Count, coverage (with ``labels``) and size distribution of one image's (or a batch's) particles.

    Sizes are in nm when every particle has them (all pixel sizes known), otherwise in px.
    """
    nm = bool(rows) and all(r["equivalent_diameter_nm"] is not None for r in rows)
    key = "equivalent_diameter_nm" if nm else "equivalent_diameter_px"
    d = np.array([r[key] for r in rows], float)
    out = {"count": len(rows), "count_not_touching_edge": int(sum(not r["touches_edge"] for r in rows)),
           "agglomerates": int(sum(r["agglomerate"] for r in rows)), "unit": "nm" if nm else "px"}
    if labels is not None:
        out["coverage"] = round(float((labels > 0).mean()), 5)
    if len(d):
        out.update({"diameter_mean": round(float(d.mean()), 4), "diameter_median": round(float(np.median(d)), 4),
                    "diameter_std": round(float(d.std()), 4), "diameter_min": round(float(d.min()), 4),
                    "diameter_max": round(float(d.max()), 4)})
    return out
