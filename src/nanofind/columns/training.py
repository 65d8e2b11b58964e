"""Training and scoring a column-height network (seed 001) on simulated datasets.

Every sample is resampled to one network pixel size (:data:`NETWORK_PIXEL_A`), normalised to zero
mean and unit deviation, and given soft height-class targets from its own column table
(:func:`nanofind.columns.targets.height_targets`, computed at the new pixel size, so the labels are
exact and not resampled). With ``elements`` (CeO2: ``("Ce", "O")``) every column also gets its
sublattice, the majority element of its atoms, from the sample's scene rebuilt from the
specification and seed it records (:func:`column_sublattices`), and every sublattice has its own
height classes. The network trains on random crops, turned by quarter turns and mirrored, with
seed 001's spatially weighted cross-entropy. Heights are read at the columns' true positions
(:func:`nanofind.columns.heights.read_heights`) and at the columns found in the network's own
probability map, to score it: exact, within ±1, the expected calibration error of the confidence
and the recall of the columns, for all columns and per sublattice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from nanofind.columns.heights import columns_from_probability, read_heights
from nanofind.columns.targets import COLUMN_RADIUS_A, HeightTargets, height_targets, weighted_cross_entropy
from nanofind.errors import NanofindInputError

#: Pixel size the network works at, Å. The supported views' closest columns (CeO2 [110]: Ce-O
#: 1.35 Å) are 6.75 px apart, Nyquist (0.4 Å) lies beyond a corrected 300 kV microscope's
#: information limit, and a 1024² frame at 0.1 Å/px becomes 512² px (a fast forward pass).
NETWORK_PIXEL_A = 0.2
#: Height classes per sublattice: 1 … MAX_HEIGHT atoms (a 6 nm CeO2 particle along [110] has columns of up to ~16).
MAX_HEIGHT = 16
#: Two columns found in a probability map are at least this far apart, Å (CeO2 [110] Ce-O: 1.35 Å).
MIN_SEPARATION_A = 0.9
#: A found column matches a true one within this distance, Å.
MATCH_DISTANCE_A = 0.6


@dataclass(frozen=True)
class HeightExample:
    """One training or test image at the network's pixel size, with its targets and true columns.

    ``columns_px``: ``(n, 2)`` true ``(x, y)`` in network pixels (origin at the top-left corner);
    ``heights``: atoms per column; ``sublattice``: each column's index into ``elements`` (0 with
    one sublattice); ``source``: where it came from (dataset, index, pixel size, dose).
    """

    image: np.ndarray
    targets: HeightTargets
    columns_px: np.ndarray
    heights: np.ndarray
    sublattice: np.ndarray
    elements: tuple[str, ...]
    source: dict


def column_sublattices(sample, elements: tuple[str, ...], *, match_A: float = 0.6) -> np.ndarray:
    """Index into ``elements`` of the majority element of every column of a simulated sample.

    The sample's scene is rebuilt from the specification and seed in its parameters (building is
    deterministic, and fast next to the simulation), each particle atom goes to the nearest
    stored column within ``match_A`` Å in projection, and each column takes its commonest element.
    """
    from scipy.spatial import cKDTree

    from nanofind.scene.build import build_scene_from_spec, build_seed

    columns = np.asarray(sample.columns, dtype=np.float64).reshape(-1, 4)
    params = sample.params
    scene = params.get("scene") or {}
    if "spec" not in scene or "scene_seed" not in scene or "margin_px" not in params:
        raise NanofindInputError("the sample records no scene specification and seed; its columns' elements "
                                 "cannot be rebuilt", "elements")
    spec = scene["spec"]
    atoms = build_scene_from_spec(spec, build_seed(int(scene["scene_seed"]), int(spec.get("draw_attempt", 0))))
    particle = np.asarray(atoms.arrays["is_particle"], dtype=bool)
    origin = float(params["margin_px"]) * float(params["pixel_size_A"])
    xy = atoms.positions[particle, :2] - origin
    symbols = np.asarray(atoms.get_chemical_symbols())[particle]
    votes = np.zeros((len(columns), len(elements)), dtype=np.int64)
    if len(columns) and len(xy):
        distance, nearest = cKDTree(columns[:, :2]).query(xy, distance_upper_bound=match_A)
        for k, element in enumerate(elements):
            hit = np.isfinite(distance) & (symbols == element)
            votes[:, k] = np.bincount(nearest[hit], minlength=len(columns))
    if len(columns) and (votes.sum(axis=1) == 0).any():
        raise NanofindInputError(f"{int((votes.sum(axis=1) == 0).sum())} columns hold none of {list(elements)}",
                                 "elements")
    return votes.argmax(axis=1)


def network_input(image: np.ndarray, pixel_size_A: float, pixel_A: float = NETWORK_PIXEL_A) -> np.ndarray:
    """An image of ``pixel_size_A`` Å/px as the network sees it, float32.

    Resampled to ``pixel_A`` Å/px (linear, pixel-area grid, edges repeated) and normalised to zero
    mean and unit deviation. Training examples and micrographs to predict on both come through here, so that the network
    never meets an image prepared differently from those it learned on.
    """
    from scipy import ndimage as ndi

    x = np.asarray(image, dtype=np.float32)
    zoom = float(pixel_size_A) / float(pixel_A)
    if abs(zoom - 1) > 1e-6:
        x = ndi.zoom(x, zoom, order=1, grid_mode=True, mode="nearest")
    return ((x - x.mean()) / max(float(x.std()), 1e-6)).astype(np.float32)


def _within(xy: np.ndarray, shape: tuple[int, int], margin_px: float) -> np.ndarray:
    """Which ``(x, y)`` positions (px) lie at least ``margin_px`` inside an image of ``shape``."""
    h, w = shape
    return (xy[:, 0] >= margin_px) & (xy[:, 0] <= w - margin_px) & (xy[:, 1] >= margin_px) & (xy[:, 1] <= h - margin_px)


def example_from_sample(sample, *, pixel_A: float = NETWORK_PIXEL_A, max_height: int = MAX_HEIGHT,
                        elements: tuple[str, ...] | None = None, source: dict | None = None) -> HeightExample:
    """A :class:`~nanofind.datasets.sample.Sample` as a :class:`HeightExample`.

    ``elements``: the sublattices to tell apart (None: one, every column alike).
    """
    pixel = float(sample.params["pixel_size_A"])
    image = network_input(sample.image, pixel, pixel_A)
    columns = np.asarray(sample.columns, dtype=np.float64).reshape(-1, 4)
    names = tuple(elements) if elements else ("",)
    sublattice = column_sublattices(sample, names) if len(names) > 1 else np.zeros(len(columns), np.int64)
    targets = height_targets(columns[:, :2], columns[:, 2], image.shape, pixel_A, max_height=max_height,
                             sublattice=sublattice, sublattices=len(names))
    # half precision: hundreds of images of 33 classes fit in a few GB (targets are soft, not exact counts)
    targets = HeightTargets(targets.probabilities.astype(np.float16), targets.weight, targets.column_index)
    record = {"pixel_size_A": pixel, "dose_e_per_A2": sample.params.get("dose_e_per_A2"), **(source or {})}
    return HeightExample(image, targets, columns[:, :2] / pixel_A, columns[:, 2].astype(np.int64),
                         sublattice.astype(np.int64), names, record)


def read_examples(paths, *, limit: int | None = None, pixel_A: float = NETWORK_PIXEL_A,
                  max_height: int = MAX_HEIGHT, elements: tuple[str, ...] | None = None) -> list[HeightExample]:
    """All samples of nanofind dataset files (or the first ``limit`` of each) as examples."""
    from nanofind.datasets.store import DatasetReader

    examples = []
    for path in paths:
        with DatasetReader(path) as reader:
            for index in range(len(reader) if limit is None else min(limit, len(reader))):
                examples.append(example_from_sample(reader.sample(index), pixel_A=pixel_A, max_height=max_height,
                                                    elements=elements, source={"dataset": str(path), "index": index}))
    return examples


#: Networks a height model may use (:func:`nanofind.learn.networks.build_network` names).
ARCHITECTURES = ("unet", "seed_unet")


def build_height_network(classes: int, architecture: str = "unet", width: int = 32):
    """A segmentation network with ``classes`` outputs, padded to its size multiple.

    ``unet`` (MONAI, 1.6 M parameters, 16 channels at full resolution) is the default: on an AMD
    EPYC with 2 threads it runs a 512² frame in 0.22 s and a training step of 8 × 192² in 0.8 s,
    against 0.37 s and 1.2 s for the seed's light U-Net (``seed_unet``, ``width`` channels).
    """
    from nanofind.learn.networks import build_network

    if architecture not in ARCHITECTURES:
        raise NanofindInputError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")
    if architecture == "seed_unet":
        return build_network("seed_unet", out_channels=classes, width=width)
    return build_network(architecture, out_channels=classes)


def _at_least(ex: HeightExample, crop_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The example's image, targets and weights, padded to at least ``crop_px`` per side (mean, background, 0)."""
    h, w = ex.image.shape
    if h >= crop_px and w >= crop_px:
        return ex.image, ex.targets.probabilities, ex.targets.weight
    ph, pw = max(0, crop_px - h), max(0, crop_px - w)
    pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
    target = np.pad(ex.targets.probabilities, ((0, 0), *pad))
    target[0] += 1.0 - target.sum(axis=0)
    return np.pad(ex.image, pad), target, np.pad(ex.targets.weight, pad)


def _batch(examples: list[HeightExample], crop_px: int, size: int, rng: np.random.Generator):
    images, targets, weights = [], [], []
    for _ in range(size):
        image, target, weight = _at_least(examples[rng.integers(len(examples))], crop_px)
        h, w = image.shape
        top, left = rng.integers(0, h - crop_px + 1), rng.integers(0, w - crop_px + 1)
        rows, cols = slice(top, top + crop_px), slice(left, left + crop_px)
        image, target, weight = image[rows, cols], target[:, rows, cols], weight[rows, cols]
        turns, mirror = int(rng.integers(4)), bool(rng.integers(2))
        image, weight = np.rot90(image, turns), np.rot90(weight, turns)
        target = np.rot90(target, turns, axes=(1, 2))
        if mirror:
            image, weight, target = image[:, ::-1], weight[:, ::-1], target[:, :, ::-1]
        images.append(image)
        targets.append(target)
        weights.append(weight)
    return (np.ascontiguousarray(np.stack(images)[:, None]), np.ascontiguousarray(np.stack(targets), np.float32),
            np.ascontiguousarray(np.stack(weights)))


def train_height_network(examples: list[HeightExample], *, steps: int, crop_px: int = 192, batch_size: int = 8,
                         learning_rate: float = 2e-3, architecture: str = "unet", width: int = 32, seed: int = 0,
                         device: str = "cpu", initial=None, progress=None):
    """Train a height network on ``examples`` for ``steps`` batches (Adam, cosine-decayed rate).

    ``initial``: a network of the same architecture and classes to start from (its weights are
    copied), for example a model's ``net`` to train further. Returns the network (in eval mode, on
    the CPU) and the loss of every step.
    """
    import torch

    if not examples:
        raise NanofindInputError("no training images")
    if steps < 1 or crop_px < 16 or batch_size < 1:
        raise NanofindInputError(f"steps, crop and batch must be >= 1, 16 and 1, got {steps}, {crop_px}, {batch_size}")
    classes = examples[0].targets.probabilities.shape[0]
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 16])
    net = build_height_network(classes, architecture, width)
    if initial is not None:
        try:
            net.load_state_dict(initial.state_dict())
        except RuntimeError as exc:
            raise NanofindInputError(f"the starting network does not fit ({exc})".splitlines()[0], "initial") from None
    net = net.to(device)
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


def class_probabilities(net, image: np.ndarray, *, symmetric: bool = False, temperature: float = 1.0) -> np.ndarray:
    """The network's per-pixel class probabilities ``(classes, rows, cols)`` of one normalised image.

    ``symmetric``: the mean over the image's 8 quarter turns and mirrors (each answer turned back),
    8 times the work; training saw every turn, so each is as valid as the others. ``temperature``
    divides the logits (above 1 softens overconfident answers; see :func:`fit_temperature`).
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    with torch.inference_mode():
        if not symmetric:
            return (net(x) / temperature).softmax(dim=1)[0].numpy()
        total = None
        for mirror in (False, True):
            seen = x.flip(-1) if mirror else x
            for turns in range(4):
                p = (net(torch.rot90(seen, turns, dims=(-2, -1))) / temperature).softmax(dim=1)
                p = torch.rot90(p, -turns, dims=(-2, -1))
                p = p.flip(-1) if mirror else p
                total = p if total is None else total + p
    return (total / 8)[0].numpy()


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


def _summary(height, truth, confidence) -> dict:
    if not len(truth):
        return {"columns": 0}
    return {"columns": int(len(truth)), "exact": float(np.mean(height == truth)),
            "within_one": float(np.mean(np.abs(height - truth) <= 1)),
            "ece": expected_calibration_error(confidence, height == truth)}


def score_heights(net, examples: list[HeightExample], *, radius_A: float = COLUMN_RADIUS_A,
                  pixel_A: float = NETWORK_PIXEL_A, margin_px: float = 4.0, threshold: float = 0.5,
                  symmetric: bool = False, temperature: float = 1.0) -> dict:
    """Heights against the truth, at the true columns and at the columns the network finds.

    Only true columns at least ``margin_px`` inside the image count. ``at_truth``: heights read at
    the true positions; ``found``: heights read at the peaks of the network's column probability
    (:func:`~nanofind.columns.heights.columns_from_probability`) matched one-to-one to true columns
    within :data:`MATCH_DISTANCE_A`, with ``recall`` (true columns matched) and ``precision``
    (found columns that match). Each has ``columns``, ``exact`` and ``within_one`` (fractions) and
    ``ece``, overall and per sublattice (``by_element``); ``seconds`` is the time taken.
    ``symmetric``, ``temperature``: see :func:`class_probabilities`.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    start = time.perf_counter()
    elements = examples[0].elements if examples else ("",)
    at_truth, found, counts = [], [], np.zeros(3)
    per_element = np.zeros((2, len(elements)))
    radius_px, match_px = radius_A / pixel_A, MATCH_DISTANCE_A / pixel_A
    for ex in examples:
        xy = ex.columns_px
        inside = _within(xy, ex.image.shape, margin_px) & (ex.heights > 0)
        probabilities = class_probabilities(net, ex.image, symmetric=symmetric, temperature=temperature)
        classes = probabilities.shape[0]
        top = (classes - 1) // len(elements)
        truth = np.minimum(ex.heights[inside], top)
        lattice = ex.sublattice[inside]
        read = read_heights(probabilities, xy[inside, 0], xy[inside, 1], radius_px=radius_px,
                            sublattices=len(elements))
        at_truth.append((read.height, truth, read.confidence, lattice, read.sublattice))
        fx, fy, _ = columns_from_probability(1.0 - probabilities[0], min_separation_px=MIN_SEPARATION_A / pixel_A,
                                             radius_px=radius_px, threshold=threshold)
        keep = _within(np.column_stack([fx, fy]), ex.image.shape, margin_px)
        fx, fy = fx[keep], fy[keep]
        counts += (inside.sum(), len(fx), 0)
        if not len(fx) or not inside.any():
            continue
        distance = cdist(xy[inside], np.column_stack([fx, fy]))
        true_i, found_i = linear_sum_assignment(np.where(distance <= match_px, distance, 1e6))
        good = distance[true_i, found_i] <= match_px
        true_i, found_i = true_i[good], found_i[good]
        counts[2] += len(true_i)
        per_element += np.stack([np.bincount(lattice, minlength=len(elements)),
                                 np.bincount(lattice[true_i], minlength=len(elements))])
        got = read_heights(probabilities, fx[found_i], fy[found_i], radius_px=radius_px, sublattices=len(elements))
        found.append((got.height, truth[true_i], got.confidence, lattice[true_i], got.sublattice))

    def summarise(parts) -> dict:
        if not parts:
            return {"columns": 0}
        height, truth, confidence, lattice, guess = (np.concatenate(v) for v in zip(*parts, strict=True))
        result = _summary(height, truth, confidence)
        if len(elements) > 1:
            result["element_correct"] = float(np.mean(lattice == guess))
            result["by_element"] = {name: _summary(height[lattice == k], truth[lattice == k],
                                                   confidence[lattice == k]) for k, name in enumerate(elements)}
        return result

    result = {"at_truth": summarise(at_truth), "found": summarise(found),
              "recall": float(counts[2] / counts[0]) if counts[0] else float("nan"),
              "precision": float(counts[2] / counts[1]) if counts[1] else float("nan")}
    if len(elements) > 1:
        result["recall_by_element"] = {name: float(per_element[1, k] / per_element[0, k]) if per_element[0, k]
                                       else float("nan") for k, name in enumerate(elements)}
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def fit_temperature(net, examples: list[HeightExample], *, radius_A: float = COLUMN_RADIUS_A,
                    pixel_A: float = NETWORK_PIXEL_A, candidates=(0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.4, 2.8),
                    margin_px: float = 4.0) -> dict:
    """The logit temperature that makes the heights' probabilities most likely on ``examples``.

    Each true column's height distribution is its disc's mass per height (summed over the
    sublattices), and the temperature among ``candidates`` with the least mean negative log
    likelihood of the true heights wins: a proper score, so it calibrates the confidence without
    trading it for accuracy (argmax heights barely move). Use images that neither trained the
    network nor score it. Returns ``temperature`` and every candidate's ``nll`` and ``ece``.
    """
    import torch

    from nanofind.columns.heights import disc_class_mass

    if not examples:
        raise NanofindInputError("no calibration images")
    elements = examples[0].elements
    logits = []
    for ex in examples:
        with torch.inference_mode():
            logits.append(net(torch.from_numpy(np.ascontiguousarray(ex.image, np.float32))[None, None])[0])
    result = {}
    for t in candidates:
        nll, confidence, correct = [], [], []
        for ex, z in zip(examples, logits, strict=True):
            xy = ex.columns_px
            inside = _within(xy, ex.image.shape, margin_px) & (ex.heights > 0)
            if not inside.any():
                continue
            p = (z / t).softmax(dim=0).numpy()
            mass = disc_class_mass(p, xy[inside, 0], xy[inside, 1], radius_A / pixel_A)[:, 1:]
            mass = mass.reshape(len(mass), len(elements), -1).sum(axis=1)
            share = mass / np.maximum(mass.sum(axis=1, keepdims=True), 1e-12)
            truth = np.minimum(ex.heights[inside], share.shape[1]) - 1
            nll.append(-np.log(np.maximum(share[np.arange(len(truth)), truth], 1e-6)))
            confidence.append(share.max(axis=1))
            correct.append(share.argmax(axis=1) == truth)
        result[float(t)] = {"nll": float(np.mean(np.concatenate(nll))),
                            "ece": expected_calibration_error(np.concatenate(confidence), np.concatenate(correct))}
    best = min(result, key=lambda t: result[t]["nll"])
    return {"temperature": best, "candidates": result}
