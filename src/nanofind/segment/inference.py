"""Whole-micrograph inference: overlapping sliding windows with Gaussian blending, in batches.

Any image size works: windows of ``window_px`` (default 512) overlap by ``overlap`` and are blended
with Gaussian importance weights (as MONAI's ``sliding_window_inference``), so tile seams vanish. An
image no larger than one window is one forward pass. When the micrograph's pixel size is known and
lies outside the model's training range, the image is resampled to the nearest end of that range
and the probabilities are resampled back to the original grid, within the bounds of the scale guard
(:mod:`nanofind.learn.scale_guard`); a bright-field image enlarged for its particles' size gets
windows as wide as the enlargement (:func:`context_window`). Networks run through a runner of
:mod:`nanofind.learn.engine` (PyTorch fp32 or bf16, or ONNX Runtime, as chosen for the machine).
"""

from __future__ import annotations

import math

import numpy as np

from nanofind.errors import NanofindInputError
from nanofind.io.micrograph import array_and_pixel_size
from nanofind.learn.card import ModelCard
from nanofind.learn.engine import OnnxRunner, TorchRunner
from nanofind.learn.heads import OutputHead
from nanofind.learn.preprocess import normalise, resample
from nanofind.learn.scale_guard import ScalePlan, plan_scale

#: Sliding-window defaults: window side (px), overlap fraction, windows per batch.
WINDOW_PX = 512
OVERLAP = 0.25
BATCH = 4
#: Largest window side (px of the resampled image) of a bright-field model whose image is enlarged
#: (:func:`context_window`).
MAX_CONTEXT_WINDOW_PX = 1024


#: Mirror images averaged by test-time augmentation (axes of an (N, C, H, W) batch).
TTA_FLIPS = ((), (3,), (2,), (2, 3))
#: Standard deviation of the Gaussian blending weights, as a fraction of the window side.
SIGMA_SCALE = 0.125


def as_runner(model, head: OutputHead | None = None) -> TorchRunner | OnnxRunner:
    """``model`` itself when it is a runner (:mod:`nanofind.learn.engine`), else a PyTorch fp32 runner of it.

    ``head``: what a runner made here returns (default: the particle probability of two classes).
    """
    return model if isinstance(model, TorchRunner | OnnxRunner) else TorchRunner(model, head=head)


def _forward(runner, x: np.ndarray, tta: bool = False) -> np.ndarray:
    """Particle probability (N, 1, H, W) float32 of a batch of normalised images.

    With ``tta`` the probabilities of the batch and of its three mirror images are averaged
    (each mirrored back), which steadies boundaries at four times the cost.
    """
    flips = TTA_FLIPS if tta else ((),)
    total = None
    for axes in flips:
        prob = runner(np.flip(x, axes) if axes else x)
        prob = np.flip(prob, axes) if axes else prob
        total = prob if total is None else total + prob
    return total / len(flips) if tta else total


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """First pixels of the windows along one axis of ``size`` pixels (the last window ends at the edge)."""
    if window >= size:
        return [0]
    step = max(1, int(window * (1 - overlap)))
    count = next(k for k in range(math.ceil(size / step)) if k * step + window >= size) + 1
    return [min(k * step, size - window) for k in range(count)]


def gaussian_weights(shape: tuple[int, int]) -> np.ndarray:
    """Blending weights of one window (float32): a Gaussian of σ = :data:`SIGMA_SCALE` × side, floor 1e-3."""
    axes = []
    for n in shape:
        x = np.arange(-(n - 1) / 2.0, (n - 1) / 2.0 + 1, dtype=np.float32)
        axes.append(np.exp(x**2 / np.float32(-2 * (n * SIGMA_SCALE) ** 2)).astype(np.float32))
    weights = axes[0][:, None] * axes[1][None, :]
    return np.maximum(weights, max(float(weights.min()), 1e-3)).astype(np.float32)


def predict_normalised(model, image: np.ndarray, window_px: int = WINDOW_PX, overlap: float = OVERLAP,
                       batch: int = BATCH, tta: bool = False) -> np.ndarray:
    """Particle probability (H, W) float32 of an already normalised image.

    Windows overlap by ``overlap`` and their probabilities are blended with Gaussian weights
    (the scheme of MONAI's ``sliding_window_inference`` with ``mode="gaussian"``, computed here in
    numpy so that ONNX Runtime runs without importing PyTorch or MONAI; a test checks the two agree).

    Parameters
    ----------
    model : torch.nn.Module or runner
        A network returning 2-class logits at the input size (run in PyTorch fp32), or a runner
        from :mod:`nanofind.learn.engine` (the backend and precision chosen for this machine)
        returning foreground probabilities (N, 1, H, W).
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
    runner = as_runner(model)
    x = np.ascontiguousarray(image, np.float32)
    h, w = x.shape
    if h <= window_px and w <= window_px:
        return np.ascontiguousarray(_forward(runner, x[None, None], tta)[0, 0], np.float32)
    wh, ww = min(window_px, h), min(window_px, w)
    corners = [(r, c) for r in window_starts(h, wh, overlap) for c in window_starts(w, ww, overlap)]
    weights = gaussian_weights((wh, ww))
    total = np.zeros((h, w), np.float32)
    norm = np.zeros((h, w), np.float32)
    for first in range(0, len(corners), batch):
        group = corners[first:first + batch]
        prob = _forward(runner, np.stack([x[r:r + wh, c:c + ww] for r, c in group])[:, None], tta)
        for (r, c), p in zip(group, prob[:, 0], strict=True):
            total[r:r + wh, c:c + ww] += weights * p
            norm[r:r + wh, c:c + ww] += weights
    total /= norm
    return total


def predict_probability(model, card: ModelCard, image, pixel_size_A: float | None = None,
                        window_px: int = WINDOW_PX, overlap: float = OVERLAP, batch: int = BATCH,
                        tta: bool = False, plan: ScalePlan | None = None) -> np.ndarray:
    """Particle probability (H, W) float32 of a raw micrograph, on its own pixel grid.

    ``card`` is the model's :class:`~nanofind.learn.card.ModelCard`; its task must be segmentation
    (a network given without a runner is run with the card's foreground channel).
    ``image`` is a 2D array or a 2D :class:`nanofind.io.Micrograph` (whose pixel size is used
    unless ``pixel_size_A`` is given). The image is normalised as in training (the card's
    ``normalisation``) and, when the pixel size (Å) is known and outside the pixel sizes the
    model works at (:func:`~nanofind.learn.scale_guard.model_zoom`), resampled into them within
    the bounds of the scale guard: ``plan`` (:func:`~nanofind.learn.scale_guard.plan_scale`, whose
    warnings the caller reports), made here when not given. ``model`` is a network or a runner;
    ``tta``: see :func:`predict_normalised`.
    """
    if card.task != "segmentation":
        raise NanofindInputError(f"a {card.task} model cannot segment particles; use a segmentation model",
                                 "model card task")
    runner = as_runner(model, OutputHead.of(card))
    image, pixel_size_A = array_and_pixel_size(image, pixel_size_A)
    image = np.asarray(image, np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {image.shape}")
    if plan is None:
        plan = plan_scale(image.shape, pixel_size_A, card)
    work = normalise(image, card.normalisation)
    if plan.zoom != 1:
        work = resample(work, plan.zoom, order=1)
    window_px, batch = context_window(card, plan.zoom, window_px, batch)
    prob = predict_normalised(runner, work, window_px, overlap, batch, tta)
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


def context_window(card: ModelCard, zoom: float, window_px: int = WINDOW_PX, batch: int = BATCH) -> tuple[int, int]:
    """Window side (px) and windows per batch for an image of ``card``'s resampled by ``zoom``.

    A bright-field card (one with trained particle diameters) whose image is enlarged gets windows
    that cover as much of the original image as ``window_px`` would, up to
    :data:`MAX_CONTEXT_WINDOW_PX`, with fewer windows per batch so that a batch holds no more
    pixels. Why: the network normalises its features over each window (instance norm), and a window
    filled by a dense monolayer of enlarged particles, with no film in it to compare against, came
    out all particle or all background window by window (docs/benchmarks.md, "Windows of enlarged
    bright-field images"). Other cards, and images not enlarged, keep ``window_px`` and ``batch``.
    """
    if zoom <= 1 or not getattr(card, "particle_diameter_px", None):
        return window_px, batch
    wider = int(min(max(window_px, round(window_px * zoom)), max(window_px, MAX_CONTEXT_WINDOW_PX)))
    return wider, max(1, (batch * window_px * window_px) // (wider * wider))


def windows_for(shape: tuple[int, int], window_px: int = WINDOW_PX, overlap: float = OVERLAP) -> int:
    """Number of sliding windows an image of ``shape`` takes (for progress reporting)."""
    return math.prod(len(window_starts(n, min(window_px, n), overlap)) for n in shape)
