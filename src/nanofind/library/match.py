"""Match an atomic-resolution image against a structure library: shortlist, register, score (seed 003).

1. **Shortlist.** The whitened ring profile of the query's power spectrum (rotation- and
   shift-invariant, :mod:`nanofind.library.descriptor`) is compared with every entry's at pixel sizes
   within a few per cent of the query's (or over a wide range when the pixel size is unknown); the
   best :data:`~nanofind.library.prescreen.PRESCREEN_SIZE` are re-ranked by their polar spectra
   (:mod:`nanofind.library.prescreen`: the spots' directions too), and the ``shortlist`` best go on.
2. **Register** (:mod:`nanofind.library.register`). For each of them, the rotation (and mirror) from
   the polar spectra, then the translation by normalised cross-correlation against the entry
   rendered on a larger canvas. The query's central window is resampled into the entry's frame at
   the library's pixel size. A HAADF entry is then smeared by the line that fits it best to the
   query (:mod:`nanofind.library.smear`: a crystal tilted off its zone draws columns as lines).
3. **Score** the registered pair: SSIM and MSE of the two images (each standardised to zero mean and
   unit variance, so that brightness and contrast do not count), and the earth mover's distance
   between their peak sets: every column found by the peak finder of :mod:`nanofind.columns.peaks` is
   a point (x Å, y Å, ``EMD_INTENSITY_A`` × its standardised intensity) of equal mass, and the cost
   of moving mass is the Euclidean distance in that space (``ot.emd2``). SSIM: higher is better;
   EMD and MSE: lower is better.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from nanofind.errors import NanofindInputError
from nanofind.library.descriptor import scale_scores
from nanofind.library.prescreen import PRESCREEN_SIZE, polar_scores
from nanofind.library.register import Canvas, polar_spectrum, rotation_candidates
from nanofind.library.render import render_haadf
from nanofind.library.smear import fit_smear, smeared
from nanofind.library.store import Library

#: Metrics and the direction in which each is better.
METRICS = {"ssim": "higher", "emd": "lower", "mse": "lower"}
#: Å per unit of standardised intensity in the EMD's feature space: a column one standard deviation
#: too bright costs as much as one half an ångström out of place.
EMD_INTENSITY_A = 0.5
#: Largest side of the registered window, px at the library's pixel size.
MAX_WINDOW_PX = 160
#: Pixel sizes searched around a known one (calibrations are good to ±3 %).
KNOWN_SCALE_RANGE = (0.96, 1.04)
#: Log-scale steps of the pixel-size refinement (each a parabola through three correlations).
SCALE_STEPS = (0.02, 0.007)
#: Steps of the rotation's refinement, degrees (the polar spectrum is good to about a degree).
ROTATION_STEPS_DEG = (0.6,)
#: Side of the window that rotation and pixel size are searched with, px (the final fit uses the whole one).
SEARCH_WINDOW_PX = 96
#: Polar grid of the registration's first rotation estimate (0.5° steps; the search refines it).
SEARCH_POLAR = {"radii": 32, "angles": 360}
#: Pixel sizes searched when it is unknown, Å: what atomic-resolution images are taken at.
UNKNOWN_PIXEL_RANGE_A = (0.03, 0.5)


@dataclass
class Match:
    """One library entry's fit to a query."""

    entry: int
    shortlist_score: float
    pixel_size_A: float
    rotation_deg: float = 0.0
    mirror: bool = False
    variant: int = 0
    offset_px: tuple[float, float] = (0.0, 0.0)
    correlation: float = float("nan")
    smear_A: float = 0.0
    smear_deg: float = 0.0
    ssim: float = float("nan")
    emd: float = float("nan")
    mse: float = float("nan")
    aligned: np.ndarray | None = field(default=None, repr=False)
    window: np.ndarray | None = field(default=None, repr=False)


def standardised(image: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance (float64)."""
    x = np.asarray(image, dtype=np.float64)
    return (x - x.mean()) / max(float(x.std()), 1e-12)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two standardised images of one shape (Gaussian-weighted, σ 1.5 px; 1 for identical)."""
    from skimage.metrics import structural_similarity

    a, b = standardised(a), standardised(b)
    data_range = max(float(a.max() - a.min()), float(b.max() - b.min()), 1e-12)
    return float(structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference of the two standardised images (0 for identical, 2 for unrelated)."""
    return float(np.mean((standardised(a) - standardised(b)) ** 2))


def peak_set(image: np.ndarray, pixel_size_A: float, spacing_px: float, *, contrast: str = "bright") -> np.ndarray:
    """Columns of a standardised image as (n, 3) points: x Å, y Å, EMD_INTENSITY_A × intensity.

    Columns whose refinement window the border cuts are left out (both images of a pair lose the
    same border).
    """
    from nanofind.columns.peaks import find_columns

    x = standardised(image)
    try:
        peaks = find_columns(x, spacing_px=max(2.0, spacing_px), contrast=contrast, threshold_sigma=3.0)
    except NanofindInputError:
        return np.zeros((0, 3))
    keep = ~peaks.edge
    return np.column_stack([peaks.x_px[keep] * pixel_size_A, peaks.y_px[keep] * pixel_size_A,
                            EMD_INTENSITY_A * peaks.intensity[keep]])


def emd(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """Earth mover's distance between two point sets of equal total mass (each point 1/n), in their units.

    Parameters
    ----------
    points_a, points_b : (n, d) and (m, d) arrays
        Feature vectors; the ground distance is Euclidean.

    Returns
    -------
    float
        The least mean distance mass must travel to turn one set into the other; inf if a set is empty.
    """
    import ot

    if len(points_a) == 0 or len(points_b) == 0:
        return float("inf")
    a = np.full(len(points_a), 1.0 / len(points_a))
    b = np.full(len(points_b), 1.0 / len(points_b))
    cost = ot.dist(np.asarray(points_a, np.float64), np.asarray(points_b, np.float64), metric="euclidean")
    return float(ot.emd2(a, b, cost))


def _window_side(shape: tuple[int, int], query_px_A: float, library_px_A: float) -> int:
    """The largest window (library px) that any rotation of the query still covers."""
    side_A = min(shape) * query_px_A / math.sqrt(2)
    return int(max(16, min(MAX_WINDOW_PX, math.floor(side_A / library_px_A))))


def query_window(coefficients: np.ndarray, query_px_A: float, side_px: int, library_px_A: float,
                 rotation_deg: float, mirror: bool, *, order: int = 3) -> np.ndarray:
    """The query's central window in an entry's frame: mirrored (y → −y) if asked, turned by −rotation.

    ``coefficients`` are the query's cubic-spline coefficients (:func:`prepared_query`); the window
    is sampled at ``library_px_A`` from them (``order=1``: linearly from the coefficients, a
    slightly smoothed and four times cheaper window for the registration's search).
    """
    query = coefficients
    h, w = query.shape
    u = (np.arange(side_px) + 0.5 - side_px / 2) * library_px_A
    uy, ux = np.meshgrid(u, u, indexing="ij")
    turn = math.radians(rotation_deg)
    # the entry turned by `rotation` (then seen mirrored, if so) matches the query: sample the query there
    x = math.cos(turn) * ux - math.sin(turn) * uy
    y = math.sin(turn) * ux + math.cos(turn) * uy
    if mirror:
        y = -y
    rows = h / 2 + y / query_px_A - 0.5
    cols = w / 2 + x / query_px_A - 0.5
    return ndi.map_coordinates(query, [rows, cols], order=order, mode="mirror", prefilter=False)


def prepared_query(query: np.ndarray, query_px_A: float, library_px_A: float) -> np.ndarray:
    """Cubic-spline coefficients of the query for :func:`query_window`.

    The query is smoothed first when it is sampled more finely than the library, so that no alias
    enters the resampled windows.
    """
    ratio = library_px_A / query_px_A
    source = ndi.gaussian_filter(query, 0.4 * ratio) if ratio > 1.2 else query
    return ndi.spline_filter(np.asarray(source, np.float64), order=3, mode="mirror")


def _canvas(library: Library, index: int, variant: int, side_px: int) -> np.ndarray:
    """The entry in its canonical placement on a canvas one cell plus a margin wider than the window."""
    p = library.pixel_size_A
    if library.renderer == "haadf":
        cell = library.cell_A[index]
        reach = float(np.abs(cell).sum(axis=0).max())
        pad = int(math.ceil(reach / p)) + 4  # the best offset never on the edge, where it cannot be refined
        n = side_px + 2 * pad
        return render_haadf(library.projection(index), (n, n), p, sigma_A=float(library.spec["sigma_A"]),
                            shift_A=(n * p / 2, n * p / 2))
    return library.images[index, variant].astype(np.float64)


def register_entry(library: Library, index: int, query: np.ndarray, query_px_A: float, *, variant: int = 0,
                   coefficients: np.ndarray | None = None,
                   pixel_bounds_A: tuple[float, float] | None = None) -> Match:
    """Register one entry onto the query, whose pixel size is about ``query_px_A``.

    Rotation and mirror from the polar spectra (both rotations 180° apart tried by correlation), then
    the pixel size refined within a few per cent by the correlation's parabola over log-scale (a
    3 % scale error moves the window's edge by half an ångström) but kept within ``pixel_bounds_A``
    (default :data:`KNOWN_SCALE_RANGE` around ``query_px_A``), then the translation. ``coefficients`` (from
    :func:`prepared_query`) saves preparing the query again for every entry.
    """
    low, high = pixel_bounds_A or pixel_search_range(query.shape, query_px_A)
    p = library.pixel_size_A
    side = _window_side(query.shape, query_px_A, p)
    canvas = _canvas(library, index, variant, side)
    side = min(side, max(16, min(canvas.shape) - 2 * int(math.ceil(np.abs(library.cell_A[index]).max() / p)) - 4))
    if coefficients is None:
        coefficients = prepared_query(query, query_px_A, p)
    # rotation and pixel size are searched with the central part of the window, on a canvas cut to fit it
    search = min(side, SEARCH_WINDOW_PX)
    cut = (side - search) // 2
    search_canvas = canvas[cut:canvas.shape[0] - cut, cut:canvas.shape[1] - cut]
    upright = query_window(coefficients, query_px_A, search, p, 0.0, False)
    entry_view = canvas[(canvas.shape[0] - search) // 2:(canvas.shape[0] + search) // 2,
                        (canvas.shape[1] - search) // 2:(canvas.shape[1] + search) // 2]
    (angle, mirror, _), = rotation_candidates(polar_spectrum(upright, p, **SEARCH_POLAR),
                                              polar_spectrum(entry_view, p, **SEARCH_POLAR))
    sliders = {search: Canvas(search_canvas, (search, search))}
    fitted: dict[tuple, tuple] = {}

    def fit(pixel_A, rotation, order=1, size=search):
        key = (pixel_A, rotation, order, size)
        if key not in fitted:
            if size not in sliders:
                sliders[size] = Canvas(canvas, (size, size))
            window = query_window(coefficients, pixel_A, size, p, rotation, mirror, order=order)
            r, c, ncc = sliders[size].locate(window)
            fitted[key] = (ncc, window, (r, c))
        return fitted[key]

    rotation = max((angle, angle + 180.0), key=lambda a: fit(query_px_A, a)[0])
    pixel_A = query_px_A
    for step in SCALE_STEPS:
        lower, centre, upper = (fit(pixel_A * math.exp(k * step), rotation)[0] for k in (-1, 0, 1))
        pixel_A = min(high, max(low, pixel_A * math.exp(step * _parabola_vertex(lower, centre, upper))))
    for step in ROTATION_STEPS_DEG:
        lower, centre, upper = (fit(pixel_A, rotation + k * step)[0] for k in (-1, 0, 1))
        rotation += step * _parabola_vertex(lower, centre, upper)
    ncc, window, (r, c) = fit(pixel_A, rotation, order=3, size=side)
    rr, cc = np.mgrid[0:side, 0:side].astype(np.float64)
    aligned = ndi.map_coordinates(canvas, [rr + r, cc + c], order=3, mode="nearest")
    smear_A, smear_deg = 0.0, 0.0
    if library.renderer == "haadf":  # HRTEM entries: a tilt changes the contrast, not only the sharpness
        smear_A, smear_deg = fit_smear(window, aligned, p)
        if smear_A > 0:  # smeared on the whole canvas: its margin (a cell and more) keeps the wrap away
            aligned = ndi.map_coordinates(smeared(canvas, p, smear_A, smear_deg), [rr + r, cc + c], order=3,
                                          mode="nearest")
    # in render_haadf's convention (mirror first, then turn) a mirrored match is turned the other way
    turned = (-rotation if mirror else rotation) % 360.0
    # the smear's direction in the query: the window's axes are the query's turned by `rotation`, then mirrored
    smear_in_query = (-(smear_deg + rotation) if mirror else smear_deg + rotation) % 180.0
    return Match(index, float("nan"), pixel_A, turned, mirror, variant, (r, c), ncc, smear_A=smear_A,
                 smear_deg=smear_in_query, aligned=aligned, window=window)


def _parabola_vertex(a: float, b: float, c: float) -> float:
    """Where the parabola through (−1, a), (0, b), (1, c) peaks, within [−1, 1] (an edge if it has none)."""
    denom = a - 2 * b + c
    if denom >= 0:
        return -1.0 if a > c else (1.0 if c > a else 0.0)
    return float(np.clip(0.5 * (a - c) / denom, -1.0, 1.0))


def score(match: Match, library: Library, metrics=("ssim", "emd", "mse")) -> Match:
    """Fill in the match's metrics from its registered window and entry image."""
    from nanofind.columns.peaks import lattice_spacing_px

    p = library.pixel_size_A
    if "ssim" in metrics:
        match.ssim = ssim(match.window, match.aligned)
    if "mse" in metrics:
        match.mse = mse(match.window, match.aligned)
    if "emd" in metrics:
        try:
            spacing = lattice_spacing_px(match.aligned, min_px=max(2.0, 0.8 / p))
        except NanofindInputError:
            spacing = max(2.0, 1.0 / p)
        contrast = "bright" if library.renderer == "haadf" else "auto"
        match.emd = emd(peak_set(match.window, p, spacing, contrast=contrast),
                        peak_set(match.aligned, p, spacing, contrast=contrast))
    return match


def shortlist(library: Library, query: np.ndarray, pixel_size_A: float | None, size: int, *,
              prescreen: int = PRESCREEN_SIZE):
    """The ``size`` (entry, image variant) pairs whose spectra fit the query best.

    The ring profile picks ``prescreen`` candidates; their polar spectra
    (:mod:`nanofind.library.prescreen`) pick the ``size`` best of them (no second stage when
    ``prescreen`` ≤ ``size``). Returns (entry indices, scores, fitted pixel sizes Å, variant indices),
    best first, the scores those of the last stage; an entry may appear with several variants (HRTEM
    defoci).
    """
    flat = library.descriptors.reshape(-1, library.descriptors.shape[-1])
    lo, hi = pixel_search_range(query.shape, pixel_size_A)
    centre = pixel_size_A if pixel_size_A is not None else math.sqrt(lo * hi)
    scores, sizes = scale_scores(query, centre, flat, scale_range=(lo / centre, hi / centre))
    variants = library.descriptors.shape[1]
    order = np.argsort(-scores, kind="stable")[:max(size, prescreen)]
    indices, scores, sizes, variant = order // variants, scores[order], sizes[order], order % variants
    if prescreen > size:
        p = library.pixel_size_A
        coefficients = prepared_query(query, float(np.median(sizes)), p)

        def upright(pixel_A: float, side_px: int) -> np.ndarray:
            side_px = max(16, min(side_px, int(min(query.shape) * pixel_A / p)))
            return query_window(coefficients, pixel_A, side_px, p, 0.0, False, order=1)

        scores = polar_scores(library, indices, variant, sizes, upright)
        keep = np.argsort(-scores, kind="stable")[:size]
        indices, scores, sizes, variant = indices[keep], scores[keep], sizes[keep], variant[keep]
    return indices, scores, sizes, variant


#: Smallest field of view a query may have, Å: the descriptor's longest period (8 Å) 2.5 times.
MIN_FIELD_A = 20.0


def pixel_search_range(shape: tuple[int, int], pixel_size_A: float | None) -> tuple[float, float]:
    """The pixel sizes (Å) searched for a query.

    :data:`KNOWN_SCALE_RANGE` around a known one, else :func:`_unknown_pixel_range`.
    """
    if pixel_size_A is None:
        return _unknown_pixel_range(shape)
    return pixel_size_A * KNOWN_SCALE_RANGE[0], pixel_size_A * KNOWN_SCALE_RANGE[1]


def _check_scale(shape: tuple[int, int], pixel_size_A: float) -> None:
    """Refuse pixel sizes at which atomic columns cannot be matched, in one line."""
    from nanofind.library.descriptor import COARSEST_PIXEL_A as coarsest

    if pixel_size_A > coarsest:
        raise NanofindInputError(f"pixel size {pixel_size_A:.4g} Å is too coarse for atomic columns (structure "
                                 f"matching needs at most {coarsest:.2f} Å per px)")
    if min(shape) * pixel_size_A < MIN_FIELD_A:
        raise NanofindInputError(f"a field of {min(shape) * pixel_size_A:.3g} Å is too small to match a lattice "
                                 f"(at least {MIN_FIELD_A:.0f} Å across)")


def _unknown_pixel_range(shape: tuple[int, int]) -> tuple[float, float]:
    """Pixel sizes an unknown query can have, Å: those at which the descriptor's frequencies fit it.

    Its lowest frequency must lie at least 2.5 px from the spectrum's centre, its highest below
    the descriptor's MAX_CYCLES_PER_PX.
    """
    from nanofind.library.descriptor import COARSEST_PIXEL_A, K_MIN_INV_A

    lo = max(UNKNOWN_PIXEL_RANGE_A[0], 2.5 / (min(shape) * K_MIN_INV_A))
    hi = min(UNKNOWN_PIXEL_RANGE_A[1], COARSEST_PIXEL_A)
    if lo >= hi:
        raise NanofindInputError(f"image of {shape[1]}×{shape[0]} px is too small to estimate a pixel size: "
                                 "give --pixel-size")
    return lo, hi


def match_image(library: Library, image: np.ndarray, pixel_size_A: float | None, *, metric: str = "ssim",
                top: int = 10, shortlist_size: int = 24) -> tuple[list[Match], dict]:
    """Rank library entries for one query image.

    Parameters
    ----------
    library : Library
        The structure library.
    image : (rows, cols) array
        An atomic-resolution image (HAADF: columns bright).
    pixel_size_A : float or None
        The image's pixel size, Å; None to fit it to each entry's lattice (an image without a lattice
        of columns is refused).
    metric : {"ssim", "emd", "mse", "all"}
        What ranks the shortlist; ``all`` ranks by the sum of the three metrics' ranks (ties by SSIM).
    top : int
        How many matches to return.
    shortlist_size : int
        Entries scored in full.

    Returns
    -------
    matches : list of Match
        Best first.
    record : dict
        Timings (s) and the shortlist.
    """
    from nanofind.columns.peaks import lattice_spacing_px

    if metric not in (*METRICS, "all"):
        raise NanofindInputError(f"metric must be ssim, emd, mse or all, got {metric!r}", "--metric")
    query = np.asarray(image, dtype=np.float64)
    if query.ndim != 2 or min(query.shape) < 32:
        raise NanofindInputError(f"a query must be one image of at least 32×32 px, got shape {query.shape}")
    started = time.perf_counter()
    if pixel_size_A is not None:
        _check_scale(query.shape, float(pixel_size_A))
    else:
        try:
            lattice_spacing_px(query)
        except NanofindInputError:
            raise NanofindInputError("no pixel size, and no lattice of columns to estimate it from: "
                                     "give --pixel-size") from None
    indices, scores, sizes, variants = shortlist(library, query, pixel_size_A, shortlist_size)
    shortlisted = time.perf_counter()
    metrics = tuple(METRICS) if metric == "all" else (metric,)
    coefficients = prepared_query(query, float(np.median(sizes)), library.pixel_size_A)
    bounds = pixel_search_range(query.shape, pixel_size_A)
    matches = []
    for index, shortlist_score, size, variant in zip(indices, scores, sizes, variants, strict=True):
        m = register_entry(library, int(index), query, float(size), variant=int(variant), coefficients=coefficients,
                           pixel_bounds_A=bounds)
        m.shortlist_score = float(shortlist_score)
        matches.append(score(m, library, metrics))
    ranked = rank(matches, metric)
    seen: set[int] = set()
    ranked = [m for m in ranked if not (m.entry in seen or seen.add(m.entry))]  # an entry's best variant only
    record = {"shortlist_seconds": shortlisted - started, "seconds": time.perf_counter() - started,
              "shortlist": sorted({int(i) for i in indices}), "pixel_size_known": pixel_size_A is not None}
    return ranked[:top], record


def rank(matches: list[Match], metric: str) -> list[Match]:
    """Matches best first by ``metric`` (``all``: sum of the three ranks, ties by SSIM)."""
    def key_of(name):
        sign = -1.0 if METRICS[name] == "higher" else 1.0
        return lambda m: sign * getattr(m, name) if np.isfinite(getattr(m, name)) else np.inf  # missing: last

    if metric != "all":
        return sorted(matches, key=key_of(metric))
    total = np.zeros(len(matches))
    for name in METRICS:
        order = sorted(range(len(matches)), key=lambda k: key_of(name)(matches[k]))
        total[order] += np.arange(len(matches))
    return [matches[k] for k in sorted(range(len(matches)), key=lambda k: (total[k], -matches[k].ssim))]
