"""The shortlist's second stage: the candidates of the ring profile re-ranked by their polar spectra.

The ring profile (:mod:`nanofind.library.descriptor`) sums the power spectrum over all directions,
so it cannot tell a pattern from another whose spots lie on the same rings in other directions; and
when a tilted crystal smears its columns, the spots along the smear fade and whole rings can vanish.
Dense patterns of high-index zones, with spots on many rings, then outrank the right entry. The
polar spectrum keeps the directions: the query's and an entry's, correlated over every rotation and
mirror (:func:`nanofind.library.register.rotation_candidates`), say how well the spots coincide in
two dimensions. It is computed for the ring profile's :data:`PRESCREEN_SIZE` best candidates only,
from the library's stored images (kept in the library object, so a batch of queries pays once).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from nanofind.library.register import polar_spectrum, rotation_candidates
from nanofind.library.store import Library

#: Candidates of the ring profile that the polar spectra re-rank.
PRESCREEN_SIZE = 128
#: Grid of the coarse polar spectra: radii over the band, angles over 180° (1° each).
POLAR_RADII = 32
POLAR_ANGLES = 180
#: Side of the query's window the polar spectrum is taken over, px at the library's pixel size.
WINDOW_PX = 128
#: Pixel sizes closer than this (log) share one query spectrum (the radii are 3 % of the band apart).
SIZE_TOLERANCE = 0.01


def entry_polar(library: Library, index: int, variant: int = 0) -> np.ndarray:
    """The coarse polar spectrum of an entry's stored image (computed once per library object)."""
    key = (int(index), int(variant))
    if key not in library.polar_cache:
        image = np.asarray(library.images[index, variant], dtype=np.float64)
        library.polar_cache[key] = polar_spectrum(image, library.pixel_size_A, radii=POLAR_RADII,
                                                  angles=POLAR_ANGLES).astype(np.float32)
    return library.polar_cache[key]


def polar_scores(library: Library, indices, variants, pixel_sizes_A,
                 query_window: Callable[[float, int], np.ndarray]) -> np.ndarray:
    """How well each candidate's polar spectrum fits the query's, at its best rotation and mirror (−1…1).

    ``query_window(pixel_size_A, side_px)`` gives the query's central window resampled at the
    library's pixel size, assuming the query's pixel size is ``pixel_size_A``; candidates whose fitted
    pixel sizes agree within :data:`SIZE_TOLERANCE` share one query spectrum.
    """
    p = library.pixel_size_A
    spectra: dict[int, np.ndarray] = {}
    scores = np.empty(len(indices))
    for k, (index, variant, size) in enumerate(zip(indices, variants, pixel_sizes_A, strict=True)):
        bucket = int(round(math.log(size) / SIZE_TOLERANCE))
        if bucket not in spectra:
            window = query_window(math.exp(bucket * SIZE_TOLERANCE), WINDOW_PX)
            spectra[bucket] = polar_spectrum(window, p, radii=POLAR_RADII, angles=POLAR_ANGLES)
        (_, _, score), = rotation_candidates(spectra[bucket], entry_polar(library, index, variant))
        scores[k] = score
    return scores
