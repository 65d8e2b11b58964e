"""On-the-fly augmentation: random crops with rotation, flips and scale, then contrast, gamma, noise, blur.

Geometry is applied to image and mask together with one affine resampling per crop (bilinear for
the image, nearest for the mask), taken from a window large enough that rotated corners never
leave real data. Intensity changes act on the normalised image only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random changes (all drawn uniformly unless noted).

    rotate: any angle 0–360°. flip: mirror half of the crops. zoom: magnification drawn
    log-uniformly from ``[1/zoom, zoom]`` (pixel-size jitter). contrast: gain range. offset:
    additive range (normalised units). gamma: exponent range. noise: largest Gaussian noise σ
    (normalised units). blur_px: largest Gaussian blur σ in pixels. ramp: largest linear
    illumination ramp across a crop, edge to edge in a random direction (normalised units), for
    the unevenness that flattening (:func:`nanofind.learn.preprocess.background_surface`) leaves.
    """

    rotate: bool = True
    flip: bool = True
    zoom: float = 1.3
    contrast: tuple[float, float] = (0.75, 1.33)
    offset: float = 0.2
    gamma: tuple[float, float] = (0.75, 1.33)
    noise: float = 0.3
    blur_px: float = 1.0
    ramp: float = 0.5

    def to_dict(self) -> dict:
        """JSON-able record."""
        return asdict(self)


NO_AUGMENTATION = Augmentation(rotate=False, flip=False, zoom=1.0, contrast=(1.0, 1.0), offset=0.0, gamma=(1.0, 1.0),
                               noise=0.0, blur_px=0.0, ramp=0.0)


def _window(array: np.ndarray, centre: tuple[int, int], size: int) -> np.ndarray:
    """A size × size window around ``centre``, reflect-padded where it leaves the array."""
    r0, c0 = centre[0] - size // 2, centre[1] - size // 2
    pad = ((max(0, -r0), max(0, r0 + size - array.shape[0])), (max(0, -c0), max(0, c0 + size - array.shape[1])))
    if any(p for pair in pad for p in pair):
        mode = "reflect" if all(p < s for pair, s in zip(pad, array.shape, strict=True) for p in pair) else "symmetric"
        array = np.pad(array, pad, mode=mode)
        r0, c0 = r0 + pad[0][0], c0 + pad[1][0]
    return array[r0:r0 + size, c0:c0 + size]


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma < 0.3:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))


def _intensity(image: torch.Tensor, aug: Augmentation, rng: np.random.Generator) -> torch.Tensor:
    """Gamma, contrast, offset, ramp, blur and noise on one (1, 1, H, W) normalised crop."""
    g = rng.uniform(*aug.gamma)
    if abs(g - 1) > 1e-3:
        # gamma on the crop's own 0..1 range, then back to its mean and spread
        lo, hi = image.min(), image.max()
        if hi > lo:
            u = ((image - lo) / (hi - lo)).clamp(0, 1) ** g
            image = (u - u.mean()) / u.std().clamp_min(1e-6) * image.std() + image.mean()
    image = image * rng.uniform(*aug.contrast) + rng.uniform(-aug.offset, aug.offset)
    if aug.ramp > 0:
        amplitude, angle = rng.uniform(0, aug.ramp), rng.uniform(0, 2 * math.pi)
        h, w = image.shape[-2:]
        y = torch.linspace(-0.5, 0.5, h)[:, None]
        x = torch.linspace(-0.5, 0.5, w)[None, :]
        image = image + amplitude * (x * math.cos(angle) + y * math.sin(angle))
    image = _gaussian_blur(image, rng.uniform(0, aug.blur_px))
    if aug.noise > 0:
        sigma = rng.uniform(0, aug.noise)
        noise = torch.from_numpy(rng.standard_normal(image.shape).astype(np.float32))
        image = image + sigma * noise
    return image


def random_crops(items: list, probabilities: np.ndarray, n: int, crop: int, aug: Augmentation,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` augmented crops, drawn from ``items`` with the given probabilities.

    Returns images (n, 1, crop, crop) float32 and masks (n, crop, crop) int64.
    """
    images, masks = [], []
    for k in rng.choice(len(items), size=n, p=probabilities):
        item = items[k]
        zoom = math.exp(rng.uniform(-math.log(aug.zoom), math.log(aug.zoom))) if aug.zoom > 1 else 1.0
        angle = rng.uniform(0, 2 * math.pi) if aug.rotate else 0.0
        flip = -1.0 if (aug.flip and rng.random() < 0.5) else 1.0
        reach = crop / zoom * (abs(math.cos(angle)) + abs(math.sin(angle)))  # rotated crop's extent in source px
        size = int(math.ceil(reach)) + 2
        centre = (int(rng.integers(0, item.image.shape[0])), int(rng.integers(0, item.image.shape[1])))
        win_img = torch.from_numpy(np.ascontiguousarray(_window(item.image, centre, size)))[None, None]
        win_mask = torch.from_numpy(_window(item.mask, centre, size).astype(np.float32))[None, None]
        s = crop / (zoom * size)
        cos, sin = math.cos(angle), math.sin(angle)
        theta = torch.tensor([[[s * cos * flip, -s * sin, 0.0], [s * sin * flip, s * cos, 0.0]]], dtype=torch.float32)
        grid = F.affine_grid(theta, (1, 1, crop, crop), align_corners=False)
        image = F.grid_sample(win_img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        mask = F.grid_sample(win_mask, grid, mode="nearest", padding_mode="reflection", align_corners=False)
        images.append(_intensity(image, aug, rng))
        masks.append(mask[:, 0].round().long())
    return torch.cat(images), torch.cat(masks)
