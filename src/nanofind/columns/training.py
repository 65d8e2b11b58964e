"""Training and scoring a column-height network (seed 001) on simulated datasets.

Every sample is resampled to one network pixel size (:data:`NETWORK_PIXEL_A`), normalised to zero
mean and unit deviation, and given soft height-class targets from its own column table
(:func:`nanofind.columns.targets.height_targets`, computed at the new pixel size, so the labels are
exact and not resampled). The network (the seed paper's light U-Net, :class:`SeedUNet`, with one
output per class) trains on random crops, turned by quarter turns and mirrored, with seed 001's
spatially weighted cross-entropy. Heights are read at the columns' true positions
(:func:`nanofind.columns.heights.read_heights`) to score it: exact, within ±1, and the expected
calibration error of the confidence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from nanofind.columns.heights import read_heights
from nanofind.columns.targets import COLUMN_RADIUS_A, HeightTargets, height_targets, weighted_cross_entropy
from nanofind.errors import NanofindInputError

#: Pixel size the network works at, Å: the column disc (0.6 Å) is 5 px across its radius.
NETWORK_PIXEL_A = 0.12
#: Height classes: 1 … MAX_HEIGHT atoms (a 6 nm CeO2 particle along [110] has columns of up to ~16).
MAX_HEIGHT = 16


@dataclass(frozen=True)
class HeightExample:
    """One training or test image at the network's pixel size, with its targets and true columns.

    ``columns_px``: ``(n, 2)`` true ``(x, y)`` in network pixels (origin at the top-left corner);
    ``heights``: atoms per column; ``source``: where it came from (dataset, index, pixel size, dose).
    """

    image: np.ndarray
    targets: HeightTargets
    columns_px: np.ndarray
    heights: np.ndarray
    source: dict


def example_from_sample(sample, *, pixel_A: float = NETWORK_PIXEL_A, max_height: int = MAX_HEIGHT,
                        source: dict | None = None) -> HeightExample:
    """A :class:`~nanofind.datasets.sample.Sample` as a :class:`HeightExample`."""
    from scipy import ndimage as ndi

    pixel = float(sample.params["pixel_size_A"])
    zoom = pixel / pixel_A
    image = ndi.zoom(np.asarray(sample.image, dtype=np.float32), zoom, order=1, grid_mode=True, mode="nearest")
    image = (image - image.mean()) / max(float(image.std()), 1e-6)
    columns = np.asarray(sample.columns, dtype=np.float64).reshape(-1, 4)
    targets = height_targets(columns[:, :2], columns[:, 2], image.shape, pixel_A, max_height=max_height)
    record = {"pixel_size_A": pixel, "dose_e_per_A2": sample.params.get("dose_e_per_A2"), **(source or {})}
    return HeightExample(image.astype(np.float32), targets, columns[:, :2] / pixel_A, columns[:, 2].astype(np.int64),
                         record)


def read_examples(paths, *, limit: int | None = None, pixel_A: float = NETWORK_PIXEL_A,
                  max_height: int = MAX_HEIGHT) -> list[HeightExample]:
    """All samples of nanofind dataset files (or the first ``limit`` of each) as examples."""
    from nanofind.datasets.store import DatasetReader

    examples = []
    for path in paths:
        with DatasetReader(path) as reader:
            for index in range(len(reader) if limit is None else min(limit, len(reader))):
                examples.append(example_from_sample(reader.sample(index), pixel_A=pixel_A, max_height=max_height,
                                                    source={"dataset": str(path), "index": index}))
    return examples


def build_height_network(max_height: int = MAX_HEIGHT, width: int = 32):
    """The seed paper's light U-Net with ``1 + max_height`` outputs, padded to its size multiple."""
    from nanofind.learn.networks import build_network

    return build_network("seed_unet", out_channels=max_height + 1, width=width)


def _batch(examples: list[HeightExample], crop_px: int, size: int, rng: np.random.Generator):
    images, targets, weights = [], [], []
    for _ in range(size):
        ex = examples[rng.integers(len(examples))]
        h, w = ex.image.shape
        if min(h, w) < crop_px:
            raise NanofindInputError(f"images of {h} x {w} px at the network's pixel size are smaller than the "
                                     f"{crop_px} px crops")
        top, left = rng.integers(0, h - crop_px + 1), rng.integers(0, w - crop_px + 1)
        window = (slice(top, top + crop_px), slice(left, left + crop_px))
        image, target, weight = ex.image[window], ex.targets.probabilities[:, window[0], window[1]], \
            ex.targets.weight[window]
        turns, mirror = int(rng.integers(4)), bool(rng.integers(2))
        image, weight = np.rot90(image, turns), np.rot90(weight, turns)
        target = np.rot90(target, turns, axes=(1, 2))
        if mirror:
            image, weight, target = image[:, ::-1], weight[:, ::-1], target[:, :, ::-1]
        images.append(image)
        targets.append(target)
        weights.append(weight)
    return (np.ascontiguousarray(np.stack(images)[:, None]), np.ascontiguousarray(np.stack(targets)),
            np.ascontiguousarray(np.stack(weights)))


def train_height_network(examples: list[HeightExample], *, steps: int, crop_px: int = 128, batch_size: int = 8,
                         learning_rate: float = 2e-3, width: int = 32, seed: int = 0, device: str = "cpu",
                         progress=None):
    """Train a height network on ``examples`` for ``steps`` batches (Adam, cosine-decayed rate).

    Returns the network (in eval mode, on the CPU) and the loss of every step.
    """
    import torch

    if not examples:
        raise NanofindInputError("no training images")
    max_height = examples[0].targets.probabilities.shape[0] - 1
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 16])
    net = build_height_network(max_height, width).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(steps, 1))
    losses = []
    net.train()
    for _ in range(steps):
        images, targets, weights = (torch.from_numpy(a).to(device) for a in _batch(examples, crop_px, batch_size, rng))
        loss = weighted_cross_entropy(net(images).log_softmax(dim=1), targets, weights)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if progress is not None:
            progress()
    return net.cpu().eval(), losses


def class_probabilities(net, image: np.ndarray) -> np.ndarray:
    """The network's per-pixel class probabilities ``(1 + K, rows, cols)`` of one normalised image."""
    import torch

    with torch.no_grad():
        logits = net(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None])
    return logits.softmax(dim=1)[0].numpy()


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy − confidence| over equal-width confidence bins, weighted by their counts."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if not len(confidence):
        return float("nan")
    which = np.minimum((confidence * bins).astype(np.intp), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total / len(confidence))


def score_heights(net, examples: list[HeightExample], *, radius_A: float = COLUMN_RADIUS_A,
                  pixel_A: float = NETWORK_PIXEL_A, margin_px: float = 4.0) -> dict:
    """Heights read at the true columns (at least ``margin_px`` inside the image) against the truth.

    Returns ``columns``, ``exact`` and ``within_one`` (fractions), ``ece`` and ``seconds``.
    """
    start = time.perf_counter()
    heights, truths, confidences = [], [], []
    for ex in examples:
        h, w = ex.image.shape
        xy = ex.columns_px
        inside = ((xy[:, 0] >= margin_px) & (xy[:, 0] <= w - margin_px) & (xy[:, 1] >= margin_px)
                  & (xy[:, 1] <= h - margin_px) & (ex.heights > 0))
        if not inside.any():
            continue
        read = read_heights(class_probabilities(net, ex.image), xy[inside, 0], xy[inside, 1],
                            radius_px=radius_A / pixel_A)
        heights.append(read.height)
        truths.append(np.minimum(ex.heights[inside], ex.targets.probabilities.shape[0] - 1))
        confidences.append(read.confidence)
    if not heights:
        return {"columns": 0}
    height, truth, confidence = (np.concatenate(v) for v in (heights, truths, confidences))
    return {"columns": int(len(truth)), "exact": float(np.mean(height == truth)),
            "within_one": float(np.mean(np.abs(height - truth) <= 1)),
            "ece": expected_calibration_error(confidence, height == truth),
            "seconds": round(time.perf_counter() - start, 2)}
