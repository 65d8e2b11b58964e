"""From a particle mask to measured particles: cleaning, splitting touching particles, measurements, flags.

Conventions: arrays have rows along y; lengths are reported in nm when the pixel size is known
(columns ending in ``_nm``, empty otherwise) and always in pixels (``_px``). ``orientation_deg`` is
the angle of the major axis from the image x axis (columns), counter-clockwise as displayed
(y pointing up the screen), in (−90°, 90°].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label, regionprops, regionprops_table
from skimage.morphology import reconstruction
from skimage.segmentation import watershed

from nanofind.analyze.table import PARTICLE_DTYPES, ParticleTable, as_table

#: The measurements of a particle, in the order of the particle table (dtypes: ``PARTICLE_DTYPES``).
PARTICLE_COLUMNS = tuple(PARTICLE_DTYPES)


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


def cleaning_for_particles(settings: CleaningSettings, diameter_px: float | None) -> CleaningSettings:
    """``settings`` with the pixel-unit clean-up shrunk to suit particles ``diameter_px`` across (px).

    The ``*_px`` defaults suit HRTEM fields of unknown pixel size, whose particles are 30-300 px.
    In a bright-field overview of 5-15 px particles they would erase the particles (a 2 px opening,
    40 px minimum area) and glue neighbours together (a 2 px closing). So the opening and closing
    radii are at most a tenth of the diameter (rounded down) and the minimum area at most a quarter
    of a typical particle's; settings already smaller, and all nm settings, are kept. ``None``
    (no measured size) returns ``settings`` unchanged.
    """
    if diameter_px is None or not np.isfinite(diameter_px) or diameter_px <= 0:
        return settings
    radius = float(int(diameter_px / 10))
    return replace(settings, opening_px=min(settings.opening_px, radius), closing_px=min(settings.closing_px, radius),
                   min_area_px=min(settings.min_area_px, round(0.25 * np.pi / 4 * diameter_px ** 2, 1)))


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


def _std_intensity(region_mask: np.ndarray, intensity: np.ndarray) -> float:
    """Standard deviation of a region's pixel values (an extra property: regionprops has it only from 0.23)."""
    return float(np.std(intensity[region_mask]))


def _rounded(values, digits: int, numpy_rounding: bool = False) -> np.ndarray:
    # particles.csv keeps the values it always had, so each column is rounded as it always was: correctly
    # (Python's round), or by scaling and rounding to an integer (NumPy's round, which can differ at a
    # decimal tie such as 1.925, as for the columns that came from NumPy scalars)
    values = np.asarray(values, float)
    if numpy_rounding:
        return np.round(values, digits)
    return np.array([round(v, digits) for v in values.tolist()], float)


def _scaled(values, nm_per_px: float | None, power: int = 1) -> np.ndarray:
    """Pixel values in nm (or nm²), rounded to 4 decimals; NaN when the pixel size is unknown."""
    values = np.asarray(values, float)
    if nm_per_px is None:
        return np.full(values.shape, np.nan)
    return _rounded(values * nm_per_px**power, 4)


def find_particles(mask: np.ndarray, pixel_size_A: float | None = None,
                   settings: CleaningSettings = CleaningSettings()) -> np.ndarray:
    """Label image of the particles of a raw mask, as ``nanofind analyze`` finds them.

    The mask is cleaned (:func:`clean_mask`; sizes in nm with ``pixel_size_A`` in Å, else in px)
    and touching particles are split (:func:`split_particles`) unless ``settings.split`` is off.
    """
    mask = clean_mask(mask, pixel_size_A, settings)
    return split_particles(mask, settings.split_depth) if settings.split else label(mask)


def measure_particles(labels: np.ndarray, image: np.ndarray | None = None, probability: np.ndarray | None = None,
                      pixel_size_A: float | None = None, settings: CleaningSettings = CleaningSettings()
                      ) -> ParticleTable:
    """Measure every labelled particle: a :class:`ParticleTable` with columns :data:`PARTICLE_COLUMNS`.

    Parameters
    ----------
    labels
        Label image (rows along y), 0 background; a particle's id is its label value.
    image
        The micrograph, for ``mean_intensity`` and ``std_intensity`` (missing without it).
    probability
        The segmentation's particle probability, for ``confidence`` (its mean over the particle).
    pixel_size_A
        Pixel size, Å; without it the ``_nm`` columns are missing (NaN) and no particle is flagged
        as an agglomerate for its size.
    settings
        ``agglomerate_solidity`` and ``max_diameter_nm`` of the agglomerate flag.

    Units and conventions: see the module docstring. Rows are in label order.
    """
    nm = pixel_size_A / 10 if pixel_size_A else None
    labels = np.asarray(labels)
    ny, nx = labels.shape
    geometry = ["label", "bbox", "area", "equivalent_diameter_area", "axis_major_length", "axis_minor_length",
                "orientation", "perimeter", "solidity", "centroid"]
    p = regionprops_table(labels, intensity_image=image,
                          properties=geometry + (["intensity_mean"] if image is not None else []),
                          extra_properties=[_std_intensity] if image is not None else None)
    n = len(p["label"])
    missing = np.full(n, np.nan)
    if probability is not None:
        confidence = _rounded(regionprops_table(labels, intensity_image=probability,
                                                properties=["intensity_mean"])["intensity_mean"], 4)
    else:
        confidence = missing
    area = np.asarray(p["area"]).astype(np.int64)
    d_px = np.asarray(p["equivalent_diameter_area"], float)
    major, minor = np.asarray(p["axis_major_length"], float), np.asarray(p["axis_minor_length"], float)
    # NumPy scalars, as always: a perimeter**2 by NumPy and by Python (pow) may differ in the last bit
    circularity = np.array([min(4 * math.pi * a / q**2, 1.0) if q > 0 else 1.0
                            for a, q in zip(np.asarray(p["area"], np.float64), np.asarray(p["perimeter"], np.float64),
                                            strict=True)], float)
    # regionprops measures from the row axis; the table's angle is from x, counter-clockwise as displayed
    orientation = 90.0 + np.degrees(np.asarray(p["orientation"], float))
    orientation = np.where(orientation > 90.0, orientation - 180.0, orientation)
    cy, cx = np.asarray(p["centroid-0"], float) + 0.5, np.asarray(p["centroid-1"], float) + 0.5  # pixel centres
    solidity = np.asarray(p["solidity"], float)
    touches = (p["bbox-0"] == 0) | (p["bbox-1"] == 0) | (p["bbox-2"] == ny) | (p["bbox-3"] == nx)
    too_big = d_px * nm > settings.max_diameter_nm if nm is not None else np.zeros(n, bool)
    columns = {
        "particle_id": np.asarray(p["label"]).astype(np.int64), "area_px": area,
        "area_nm2": _scaled(area, nm, 2), "equivalent_diameter_px": _rounded(d_px, 3, numpy_rounding=True),
        "equivalent_diameter_nm": _scaled(d_px, nm), "major_axis_px": _rounded(major, 3),
        "minor_axis_px": _rounded(minor, 3), "major_axis_nm": _scaled(major, nm), "minor_axis_nm": _scaled(minor, nm),
        "aspect_ratio": _rounded(major / np.maximum(minor, 1e-9), 4),
        "orientation_deg": _rounded(orientation, 2), "circularity": _rounded(circularity, 4, numpy_rounding=True),
        "solidity": _rounded(solidity, 4),
        "centroid_x_px": _rounded(cx, 2, numpy_rounding=True), "centroid_y_px": _rounded(cy, 2, numpy_rounding=True),
        "centroid_x_nm": _scaled(cx, nm), "centroid_y_nm": _scaled(cy, nm),
        "mean_intensity": _rounded(p["intensity_mean"], 5) if image is not None else missing,
        "std_intensity": _rounded(p["_std_intensity"], 5) if image is not None else missing,
        "confidence": confidence,
        "touches_edge": np.asarray(touches, bool),
        "agglomerate": (solidity < settings.agglomerate_solidity) | too_big,
    }
    return ParticleTable(columns)


def summarise(particles: ParticleTable | list[dict], labels: np.ndarray | None = None) -> dict:
    """Count, coverage (with ``labels``) and size distribution of one image's (or a batch's) particles.

    Sizes (``diameter_*``: equivalent diameters) are in nm when every particle has them (all pixel
    sizes known), otherwise in px; ``unit`` says which. ``coverage``: particle area fraction of the image.
    """
    table = as_table(particles)
    n = len(table)
    nm = n > 0 and not np.isnan(np.asarray(table["equivalent_diameter_nm"], float)).any()
    d = np.asarray(table["equivalent_diameter_nm" if nm else "equivalent_diameter_px"], float) if n else np.empty(0)
    out = {"count": n, "count_not_touching_edge": int(n - np.count_nonzero(table["touches_edge"])) if n else 0,
           "agglomerates": int(np.count_nonzero(table["agglomerate"])) if n else 0, "unit": "nm" if nm else "px"}
    if labels is not None:
        out["coverage"] = round(float((labels > 0).mean()), 5)
    if len(d):
        out.update({"diameter_mean": round(float(d.mean()), 4), "diameter_median": round(float(np.median(d)), 4),
                    "diameter_std": round(float(d.std()), 4), "diameter_min": round(float(d.min()), 4),
                    "diameter_max": round(float(d.max()), 4)})
    return out
