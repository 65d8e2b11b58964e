"""Particle outlines placed at the image's own edge: local-threshold refinement of a model's mask.

A segmentation network finds particles reliably but places their outlines only to within about a
pixel of its working grid, and on the real micrographs the bright-field model's outlines lie a
pixel or so outside the labelled ones. For particles 50 px across that costs a few per cent of
pixel Dice; for particles under about 30 px it costs 10 % or more, and a plain Otsu threshold,
which puts the outline where the intensity crosses halfway between particle and background, wins
(docs/benchmarks.md, "Outline refinement").

:func:`refine_outlines` keeps what the model decided about *which* particles there are and moves
*where* their outlines run: within ``band_px`` of the model's outline, a pixel belongs to a
particle when the lightly smoothed image lies on the particle's side of the level
``edge_fraction`` of the way from the local background intensity to the local particle
intensity. The two local intensities are Gaussian-weighted means (over ``context_px``) of the
mask's interior (eroded by the band) and of its exterior (beyond the band), so slow illumination
gradients, film thickness changes and particles of different contrast each get their own level.
The sign of the contrast is read locally too (particles darker in bright field, either way in
HRTEM). Where the local contrast does not stand out of the noise, the model's answer stands.

:func:`outline_mask` is what ``analyze``, ``segment`` and ``evaluate`` call: the card's threshold,
then this refinement when the card asks for it (``refine_outlines_below_px``: only images whose
particles are typically smaller than that, measured on the model's mask, since for large
particles the model's own outline is as good or better). For bright-field cards and particles of
15 px and more it then asks a global Otsu threshold too, taken on the image smoothed at a 12th of
the typical diameter (at least 2 px: enough to quiet the noise along an outline, while the
half-level contour of a round particle moves inward by only about σ²/d, a 144th of d). Where
threshold and network agree on a particle (one to one, intersection over union ≥ 0.5), the
threshold's outline is kept: it follows the particle's own half-contrast edge, where the outlines
of the 20 labelled real micrographs run too (docs/benchmarks.md, "Threshold outlines at every
size"), and a particle the two disagree on stays the network's. Below 15 px the
threshold's outlines are too coarse and the refined ones are kept.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: smallest local particle-background contrast, in units of the smoothed image's noise, that moves an outline
#: (the figures in docs/benchmarks.md were measured with a first noise estimate 1.37x too high and a factor of 3,
#: that is with this gate)
MIN_CONTRAST_TO_NOISE = 4.1
#: smallest and largest smoothing (Gaussian sigma, px) :func:`outline_mask` uses
SMOOTHING_RANGE_PX = (0.7, 1.5)
#: typical particle diameter (px) from which :func:`outline_mask` takes a global threshold's outline for the
#: particles on which threshold and network agree (below it, the refined outline is better)
THRESHOLD_OUTLINES_FROM_PX = 15.0
#: the Gaussian sigma of the image that threshold outlines are taken on, as a fraction of the typical particle
#: diameter (docs/benchmarks.md, "Threshold outlines at every size"), and its least value (px)
THRESHOLD_SMOOTHING_PER_DIAMETER = 1 / 12
THRESHOLD_SMOOTHING_MIN_PX = 2.0
#: intersection over union a threshold particle and a network particle need to count as the same particle (as
#: ``evaluate`` matches particles; 0.8 until 2026-11-30 left small particles with wide network outlines unmatched)
SAME_PARTICLE_IOU = 0.5


def refine_outlines(image, mask, *, edge_fraction: float = 0.5, smoothing_px: float = 1.5, band_px: int = 2,
                    context_px: float = 8.0) -> np.ndarray:
    """Move the outlines of ``mask`` to the image's local half-contrast edge; returns a new boolean mask.

    ``image`` (H, W) is the raw micrograph, ``mask`` (H, W) the model's particle mask on the same
    grid (rows are y). ``edge_fraction`` (0..1) places the level between the local background (0)
    and particle (1) intensities; ``smoothing_px`` is the Gaussian sigma (px) applied to the image
    first (it also removes lattice fringes of periods below about 4 σ); ``band_px`` is how far (px)
    an outline may move either way; ``context_px`` is the sigma (px) of the neighbourhood over
    which the local particle and background intensities are averaged. Pixels farther than
    ``band_px`` from the model's outline keep the model's answer; holes left inside a particle
    that are smaller than the band's area are filled.
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2 or np.shape(image) != mask.shape:
        raise ValueError(f"image {np.shape(image)} and mask {mask.shape} must be 2D arrays of one shape")
    if not 0 < edge_fraction < 1:
        raise ValueError(f"edge_fraction must lie between 0 and 1, got {edge_fraction}")
    band_px = max(1, int(band_px))
    if not mask.any() or mask.all():
        return mask.copy()
    raw = np.asarray(image, np.float32)
    smooth = ndi.gaussian_filter(raw, smoothing_px) if smoothing_px > 0 else raw
    interior = ndi.binary_erosion(mask, iterations=band_px)
    grown = ndi.binary_dilation(mask, iterations=band_px)
    band = np.nonzero(grown & ~interior)  # only these pixels may change
    inside_mean, inside_ok = local_mean_at(smooth, interior, context_px, band)
    outside_mean, outside_ok = local_mean_at(smooth, ~grown, context_px, band)
    contrast = inside_mean - outside_mean
    noise = _smoothed_noise(raw, smoothing_px)
    movable = inside_ok & outside_ok & (np.abs(contrast) > MIN_CONTRAST_TO_NOISE * noise)
    level = outside_mean + edge_fraction * contrast
    on_particle_side = (smooth[band] - level) * np.sign(contrast) > 0
    refined = mask.copy()
    rows, cols = band[0][movable], band[1][movable]
    refined[rows, cols] = on_particle_side[movable]
    return _fill_small_holes(refined, max(4, int(np.pi * band_px ** 2)))


def _fill_small_holes(mask: np.ndarray, max_area_px: int) -> np.ndarray:
    """``mask`` with its enclosed background regions of at most ``max_area_px`` pixels filled."""
    holes, n = ndi.label(~mask)
    if n == 0:
        return mask
    areas = np.bincount(holes.ravel())
    small = areas <= max_area_px
    small[0] = False
    edge = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
    small[edge] = False  # background touching the border is not enclosed
    return mask | small[holes]


def local_mean_at(values: np.ndarray, where: np.ndarray, sigma_px: float, at: tuple[np.ndarray, np.ndarray]):
    """Gaussian-weighted mean (sigma ``sigma_px``) of ``values`` over the pixels ``where``, at the pixels ``at``.

    Returns the means and whether each is defined (enough of ``where`` nearby). A wide Gaussian
    hardly changes over a few pixels, so for sigma of 4 px or more it is taken on a grid coarsened
    by about sigma/2 (block averages, which add only f²/12 px² of variance) and interpolated at
    ``at``: on a 4096² image that is some 0.1 s instead of 1 s per filter.
    """
    f = int(sigma_px // 2)
    weights = where.astype(np.float32)
    totals = np.where(where, values, np.float32(0))
    if f >= 2:
        height, width = values.shape
        rows, cols = -(-height // f), -(-width // f)
        pad = ((0, rows * f - height), (0, cols * f - width))
        weights = np.pad(weights, pad).reshape(rows, f, cols, f).mean(axis=(1, 3))
        totals = np.pad(totals, pad).reshape(rows, f, cols, f).mean(axis=(1, 3))
    weights = ndi.gaussian_filter(weights, sigma_px / max(f, 1))
    totals = ndi.gaussian_filter(totals, sigma_px / max(f, 1))
    ok = weights > 1e-3
    means = np.where(ok, totals / np.maximum(weights, 1e-12), np.float32(0))
    if f < 2:
        return means[at], ok[at]
    # pixel centre (i + 0.5) / f - 0.5 on the coarse grid; linear interpolation, edges held
    coords = [(np.asarray(a, np.float32) + 0.5) / f - 0.5 for a in at]
    means_at = ndi.map_coordinates(means, coords, order=1, mode="nearest")
    # defined where the nearest coarse cell is: a cell's neighbours differ from it by a few per cent at most
    rows = np.minimum(np.asarray(at[0]) // f, ok.shape[0] - 1)
    cols = np.minimum(np.asarray(at[1]) // f, ok.shape[1] - 1)
    return means_at, ok[rows, cols]


def _smoothed_noise(raw: np.ndarray, smoothing_px: float) -> float:
    """Standard deviation of the image's white pixel noise after Gaussian smoothing of sigma ``smoothing_px``."""
    from nanofind.segment.scale import pixel_noise

    sigma = pixel_noise(raw)
    if smoothing_px > 0:
        sigma /= 2 * np.sqrt(np.pi) * smoothing_px  # white noise averaged by a 2D Gaussian
    return sigma


def adopt_threshold_outlines(mask, threshold_mask, min_iou: float = SAME_PARTICLE_IOU) -> tuple[np.ndarray, int]:
    """``mask`` with each particle replaced by its twin in ``threshold_mask`` where the two agree.

    A particle (connected component) of ``mask`` and one of ``threshold_mask`` are twins when each
    overlaps no other particle of the other mask and their intersection over union is at least
    ``min_iou``. Particles without a twin keep their outline; particles of ``threshold_mask`` that
    the network did not find are not added. Both masks are (H, W) booleans on one grid. Returns
    the new mask and the number of particles whose outline was replaced.
    """
    mask = np.asarray(mask, bool)
    threshold_mask = np.asarray(threshold_mask, bool)
    ours, n_ours = ndi.label(mask)
    theirs, n_theirs = ndi.label(threshold_mask)
    if n_ours == 0 or n_theirs == 0:
        return mask.copy(), 0
    both = (ours > 0) & (theirs > 0)
    code = ours[both].astype(np.int64) * (n_theirs + 1) + theirs[both]
    pairs, overlap = np.unique(code, return_counts=True)
    a, b = pairs // (n_theirs + 1), pairs % (n_theirs + 1)
    partners_of_a = np.bincount(a, minlength=n_ours + 1)
    partners_of_b = np.bincount(b, minlength=n_theirs + 1)
    area_a = np.bincount(ours.ravel(), minlength=n_ours + 1)
    area_b = np.bincount(theirs.ravel(), minlength=n_theirs + 1)
    iou = overlap / (area_a[a] + area_b[b] - overlap)
    twins = (partners_of_a[a] == 1) & (partners_of_b[b] == 1) & (iou >= min_iou)
    if not twins.any():
        return mask.copy(), 0
    drop = np.zeros(n_ours + 1, bool)
    drop[a[twins]] = True
    take = np.zeros(n_theirs + 1, bool)
    take[b[twins]] = True
    return (mask & ~drop[ours]) | take[theirs], int(twins.sum())


def typical_diameter_px(mask, min_area_px: int = 10) -> float | None:
    """Median equivalent-circle diameter (px) of the mask's components of at least ``min_area_px``; None if none."""
    labels, n = ndi.label(np.asarray(mask, bool))
    if n == 0:
        return None
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas >= min_area_px]
    if not len(areas):
        return None
    return float(np.median(2 * np.sqrt(areas / np.pi)))


def outline_mask(card, probability, image=None, threshold: float | None = None,
                 record: dict | None = None) -> np.ndarray:
    """The card's particle mask of ``probability``, its outlines placed on ``image`` when the card asks for it.

    Cards with ``refine_outlines_below_px`` (px; the bright-field ones) ask for it; others get the
    thresholded mask. For images whose particles, measured on the model's mask
    (:func:`typical_diameter_px`), are typically smaller than that, :func:`refine_outlines` moves
    the outlines, with a smoothing that follows the particles' size (:func:`smoothing_for`). From
    :data:`THRESHOLD_OUTLINES_FROM_PX` up, whatever their size, the particles on which an Otsu
    threshold of the image (smoothed by :func:`threshold_smoothing_for`) agrees with the network
    then take the threshold's outline (:func:`adopt_threshold_outlines`). ``threshold`` overrides
    the card's. Without ``image`` the mask is returned as thresholded. A ``record`` dict gets
    ``outlines_refined`` (bool), ``typical_diameter_px`` when measured, and ``threshold_outlines``
    (particles whose outline came from the threshold) when that was tried, for the summary.
    """
    record = {} if record is None else record
    record["outlines_refined"] = False
    mask = card.particle_mask(probability, threshold)
    below_px = getattr(card, "refine_outlines_below_px", None)
    if image is None or below_px is None:
        return mask
    diameter = typical_diameter_px(mask)
    record["typical_diameter_px"] = None if diameter is None else round(diameter, 2)
    if diameter is None:
        return mask
    if diameter < float(below_px):
        record["outlines_refined"] = True
        mask = refine_outlines(image, mask, smoothing_px=smoothing_for(diameter))
    if diameter < THRESHOLD_OUTLINES_FROM_PX:
        return mask
    from nanofind.segment.baselines import otsu_mask

    threshold_mask = otsu_mask(np.asarray(image, np.float32), smooth_px=threshold_smoothing_for(diameter))
    adopted, record["threshold_outlines"] = adopt_threshold_outlines(mask, threshold_mask)
    return adopted


def threshold_smoothing_for(diameter_px: float) -> float:
    """Gaussian sigma (px) of the image whose Otsu threshold gives outlines for particles ``diameter_px`` across.

    A 12th of the diameter, at least 2 px (:data:`THRESHOLD_SMOOTHING_PER_DIAMETER`,
    :data:`THRESHOLD_SMOOTHING_MIN_PX`).
    """
    return float(max(THRESHOLD_SMOOTHING_MIN_PX, diameter_px * THRESHOLD_SMOOTHING_PER_DIAMETER))


def smoothing_for(diameter_px: float) -> float:
    """Gaussian sigma (px) of :func:`refine_outlines` for particles ``diameter_px`` across.

    Enough to quiet noise and fringes (1.5 px), yet small beside the particle (a 14th of its
    diameter, at least 0.7 px) so that small particles are not blurred into their neighbours.
    """
    return float(np.clip(diameter_px / 14, SMOOTHING_RANGE_PX[0], SMOOTHING_RANGE_PX[1]))
