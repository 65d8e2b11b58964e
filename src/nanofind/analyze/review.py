"""Is the model's mask of an image to be trusted? Its agreement with an Otsu threshold, and how sure it is.

A network can be confidently wrong on micrographs unlike its training data, where a plain threshold
may do well (low-magnification bright field). For every image the analysis reports:

- ``otsu_agreement_dice``: the Dice coefficient of the model's cleaned mask and the Otsu baseline's
  mask (:func:`nanofind.segment.baselines.otsu_mask`): 1 when they agree, 0 when they share nothing.
  On HRTEM fields Otsu is poor (lattice fringes, thin carbon), so disagreement alone means little;
- ``unsure_fraction``: of the pixels the model gives a particle probability of at least
  :data:`POSSIBLE`, the share it is unsure of (below :data:`SURE`).

An image is flagged for review when the model is clearly unsure **and** disagrees with Otsu:
``unsure_fraction`` > :data:`MAX_UNSURE_FRACTION`, ``otsu_agreement_dice`` <
:data:`MIN_OTSU_AGREEMENT`, and the possible-particle area is at least :data:`MIN_POSSIBLE_AREA` of
the image (an empty field, where only a few specks are possible, is not in doubt). Measured on
2026-11-29 (docs/benchmarks.md): on 74 simulated HRTEM fields with particles the unsure fraction
stayed ≤ 0.18, on the 20 real micrographs none is flagged, and on 16 empty fields the possible area
stayed ≤ 0.62 %; the bundled ``example_03``, whose faint low-dose CeO2 particle the model splits in
two, is unsure of 0.52 of 4 % of the field and agrees with Otsu at 0.10: it is flagged.
"""

from __future__ import annotations

import numpy as np

#: Probability from which a pixel may be particle, and from which the model is sure of it.
POSSIBLE, SURE = 0.2, 0.8
#: Flag thresholds (see the module docstring).
MAX_UNSURE_FRACTION = 0.35
MIN_OTSU_AGREEMENT = 0.5
MIN_POSSIBLE_AREA = 0.01
#: Pixels the Otsu comparison works on at most (larger images are block-averaged to about this many).
OTSU_PIXELS = 1 << 20


def review_signals(probability: np.ndarray, mask: np.ndarray, image: np.ndarray,
                   pixel_size_A: float | None = None) -> dict:
    """Otsu agreement, unsure fraction and the review flag of one image (see the module docstring).

    ``probability`` is the model's particle probability and ``mask`` its cleaned particle mask, both
    on the grid of ``image`` (the micrograph as read); ``pixel_size_A`` (Å or None) sets the Otsu
    baseline's smoothing and cleaning. Returns ``otsu_agreement_dice``, ``unsure_fraction``,
    ``possible_area_fraction``, ``review`` (bool) and ``reason`` (a sentence, or None).
    """
    from nanofind.segment.baselines import otsu_mask

    probability, mask = np.asarray(probability), np.asarray(mask, bool)
    # compared on at most about a megapixel: the agreement does not need every pixel of a large micrograph,
    # and the Otsu baseline's smoothing and cleaning would otherwise add a second or more to a 4096² image
    step = max(1, int(np.ceil(np.sqrt(mask.size / OTSU_PIXELS))))
    if step > 1:
        image, mask = _block_mean(np.asarray(image, np.float32), step), _block_mean(mask, step) >= 0.5
        pixel_size_A = pixel_size_A * step if pixel_size_A else pixel_size_A
    otsu = otsu_mask(image, pixel_size_A)
    total = int(mask.sum()) + int(otsu.sum())
    agreement = 2 * int((mask & otsu).sum()) / total if total else 1.0
    possible = probability >= POSSIBLE
    n_possible = int(possible.sum())
    unsure = int((possible & (probability < SURE)).sum()) / n_possible if n_possible else 0.0
    area = n_possible / probability.size
    review = unsure > MAX_UNSURE_FRACTION and agreement < MIN_OTSU_AGREEMENT and area >= MIN_POSSIBLE_AREA
    reason = (f"the model is unsure of {unsure:.0%} of what may be particle and agrees with an Otsu threshold "
              f"only at Dice {agreement:.2f}: check this image") if review else None
    return {"otsu_agreement_dice": round(agreement, 4), "unsure_fraction": round(unsure, 4),
            "possible_area_fraction": round(area, 5), "review": bool(review), "reason": reason}


def _block_mean(array: np.ndarray, step: int) -> np.ndarray:
    """Means of ``step`` × ``step`` blocks (a partial last row or column of blocks is dropped)."""
    h, w = (array.shape[0] // step) * step, (array.shape[1] // step) * step
    return array[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3), dtype=np.float32)
