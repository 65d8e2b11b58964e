"""Training losses on 2-class logits (N, 2, H, W) and integer masks (N, H, W).

- ``ce``: categorical cross-entropy (seeds 002 and 004).
- ``dice_ce``: soft Dice plus cross-entropy, MONAI's ``DiceCELoss`` (seed 004, chapter 4).
- ``weighted_ce``: the spatially weighted cross-entropy of seed 001. The seed does not give its
  weight map; nanofind uses the U-Net rule of Ronneberger et al.: class-balancing weights plus
  ``w0 · exp(−(d1 + d2)² / 2σ²)``, where d1 and d2 are the distances to the nearest and the
  second-nearest particle. It weights the thin background gaps between neighbouring particles,
  where a segmentation fails by merging them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from scipy.ndimage import distance_transform_edt, label

LOSSES = ("ce", "dice_ce", "weighted_ce")


def border_weights(mask: np.ndarray, w0: float = 10.0, sigma_px: float = 5.0) -> np.ndarray:
    """Weight map (H, W) of :mod:`nanofind.learn.losses`'s ``weighted_ce`` for one binary mask.

    Class weights make both classes weigh the same in total; the gap term peaks between
    particles. ``sigma_px`` is in pixels.
    """
    mask = np.asarray(mask) > 0
    weights = np.ones(mask.shape, np.float32)
    fraction = mask.mean()
    if 0 < fraction < 1:
        weights[mask] = 0.5 / fraction
        weights[~mask] = 0.5 / (1 - fraction)
    labels, n = label(mask)
    if n >= 2:
        distances = np.stack([distance_transform_edt(labels != k) for k in range(1, n + 1)])
        distances.sort(axis=0)
        gap = w0 * np.exp(-((distances[0] + distances[1]) ** 2) / (2 * sigma_px**2))
        weights += np.where(mask, 0.0, gap).astype(np.float32)
    return weights


class SegmentationLoss(torch.nn.Module):
    """One of :data:`LOSSES`, applied to logits and integer masks."""

    def __init__(self, name: str = "dice_ce"):
        super().__init__()
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
        self.name = name
        if name == "dice_ce":
            from monai.losses import DiceCELoss

            self._dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)

    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch."""
        logits = logits.float()
        if self.name == "ce":
            return F.cross_entropy(logits, masks)
        if self.name == "dice_ce":
            return self._dice_ce(logits, masks[:, None])
        weights = torch.from_numpy(np.stack([border_weights(m) for m in masks.cpu().numpy()]))
        per_pixel = F.cross_entropy(logits, masks, reduction="none")
        return (per_pixel * weights.to(per_pixel.device)).sum() / weights.sum()
