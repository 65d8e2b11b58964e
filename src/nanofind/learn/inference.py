"""Whole-micrograph inference: overlapping sliding windows with Gaussian blending, in batches.

Any image size works: windows of ``window_px`` (default 512) overlap by ``overlap`` and are blended
with Gaussian importance weights (MONAI ``sliding_window_inference``), so tile seams vanish. An
image no larger than one window is one forward pass. When the micrograph's pixel size is known and
lies outside the model's training range, the image is resampled to the nearest end of that range
and the probabilities are resampled back to the original grid, within the bounds of the scale guard
(:mod:`nanofind.learn.scale_guard`). Networks run through a runner of
:mod:`nanofind.learn.engine` (PyTorch fp32 or bf16, or ONNX Runtime, as chosen for the machine).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nanofind.io.micrograph import array_and_pixel_size
from nanofind.learn.engine import OnnxRunner, TorchRunner
from nanofind.learn.preprocess import normalise_for, resample
from nanofind.learn.scale_guard import ScalePlan, plan_scale

#: Sliding-window defaults: window side (px), overlap fraction, windows per batch.
WINDOW_PX = 512
OVERLAP = 0.25
BATCH = 4


#: Mirror images averaged by test-time augmentation (axes of an (N, C, H, W) batch).
TTA_FLIPS = ((), (3,), (2,), (2, 3))


def as_runner(model) -> TorchRunner | OnnxRunner:
    """``model`` itself when it is a runner (:func:`nanofind.learn.engine.make_runner`), else a PyTorch fp32 runner."""
    return model if isinstance(model, TorchRunner | OnnxRunner) else TorchRunner(model)


def _forward(runner, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Particle probability (N, 1, H, W) float32 of a batch of normalised images.

    With ``tta`` the probabilities of the batch and of its three mirror images are averaged
    (each mirrored back), which steadies boundaries at four times the cost.
    """
    flips = TTA_FLIPS if tta else ((),)
    total = None
    for dims in flips:
        prob = runner(torch.flip(x, dims) if dims else x)
        prob = torch.flip(prob, dims) if dims else prob
        total = prob if total is None else total + prob
    return total / len(flips)


def predict_normalised(model, image: np.ndarray, window_px: int = WINDOW_PX, overlap: float = OVERLAP,
                       batch: int = BATCH, tta: bool = False) -> np.ndarray:
    """Particle probability (H, W) float32 of an already normalised image.

    Parameters
    ----------
    model : torch.nn.Module or runner
        A network returning 2-class logits at the input size (run in PyTorch fp32), or a runner
        from :func:`nanofind.learn.engine.make_runner` (the backend and precision chosen for this
        machine).
    image : numpy.ndarray
        (H, W) normalised image.
    window_px : int
        Sliding-window side, pixels. Images that fit in one window take one pass.
    overlap : float
        Overlap of neighbouring windows, as a fraction of the window.
    batch : int
        Windows per forward pass.
    tta : bool
        Average over the image and its mirror images (test-time augmentation, 4× the time).
    """
    from monai.inferers import sliding_window_inference

    runner = as_runner(model)
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]
    h, w = image.shape
    with torch.inference_mode():
        if h <= window_px and w <= window_px:
            return _forward(runner, x, tta)[0, 0].numpy()
        size = (min(window_px, h), min(window_px, w))
        prob = sliding_window_inference(x, size, batch, lambda t: _forward(runner, t, tta), overlap=overlap,
                                        mode="gaussian", padding_mode="reflect")
    return np.asarray(prob[0, 0], np.float32)


def predict_probability(model, card: dict, image, pixel_size_A: float | None = None,
                        window_px: int = WINDOW_PX, overlap: float = OVERLAP, batch: int = BATCH,
                        tta: bool = False, plan: ScalePlan | None = None) -> np.ndarray:
    """Particle probability (H, W) float32 of a raw micrograph, on its own pixel grid.

    ``image`` is a 2D array or a 2D :class:`nanofind.io.Micrograph` (whose pixel size is used
    unless ``pixel_size_A`` is given). The image is normalised as in training (the card's
    ``normalisation``) and, when the pixel size (Å) is known and outside the pixel sizes the
    model works at (:func:`~nanofind.learn.scale_guard.model_zoom`), resampled into them within
    the bounds of the scale guard: ``plan`` (:func:`~nanofind.learn.scale_guard.plan_scale`, whose
    warnings the caller reports), made here when not given. ``model`` is a network or a runner;
    ``tta``: see :func:`predict_normalised`.
    """
    image, pixel_size_A = array_and_pixel_size(image, pixel_size_A)
    image = np.asarray(image, np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {image.shape}")
    if plan is None:
        plan = plan_scale(image.shape, pixel_size_A, card)
    work = normalise_for(image, card.get("normalisation"))
    if plan.zoom != 1:
        work = resample(work, plan.zoom, order=1)
    prob = predict_normalised(model, work, window_px, overlap, batch, tta)
    del work
    if prob.shape != image.shape:
        factors = (image.shape[0] / prob.shape[0], image.shape[1] / prob.shape[1])
        from scipy.ndimage import zoom as nd_zoom

        prob = nd_zoom(prob, factors, order=1, mode="nearest", grid_mode=True)
        prob = prob[:image.shape[0], :image.shape[1]]
        if prob.shape != image.shape:  # zoom rounding: pad by the edge
            prob = np.pad(prob, [(0, image.shape[0] - prob.shape[0]), (0, image.shape[1] - prob.shape[1])],
                          mode="edge")
    return np.clip(prob, 0, 1, out=prob).astype(np.float32, copy=False)


def windows_for(shape: tuple[int, int], window_px: int = WINDOW_PX, overlap: float = OVERLAP) -> int:
    """Number of sliding windows an image of ``shape`` takes (for progress reporting)."""
    step = max(1, int(window_px * (1 - overlap)))
    return int(np.prod([1 if n <= window_px else math.ceil((n - window_px) / step) + 1 for n in shape]))
