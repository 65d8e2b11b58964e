"""Training image classifiers through wrong labels (seed 004, chapter 5).

Four methods share one small network (:func:`chapter5_network`: the seed's Figure 5.2a, with a third
conv block by default, :attr:`NoisyTrainingSettings.channels`) and one augmentation
(:func:`augment_batch`):

- ``standard``: cross-entropy on the noisy labels, keeping the weights of the epoch with the lowest
  validation loss (the seed's checkpointing; the validation items carry noisy labels too).
  Co-teaching and ELR keep the epoch of best noisy validation accuracy instead
  (:data:`ACCURACY_CHECKPOINT`).
- ``two-step``: the seed's curriculum. The network first learns from a tiny clean set only
  (:attr:`NoisyTrainingSettings.clean_epochs` epochs; the seed used 10 images per class for 10
  epochs), then trains as ``standard`` on the noisy set from those weights.
- ``coteaching`` (Han et al. 2018): two networks, each ranking a mini-batch by its own loss and
  passing its small-loss fraction ``1 − forget_rate(epoch)`` (within each given class:
  :func:`small_loss_indices`) to the other for its update; the
  forget rate ramps linearly to the noise rate over the first
  :attr:`NoisyTrainingSettings.ramp_epochs` epochs (:func:`forget_rate`). Without a given noise
  rate it is estimated (:func:`estimate_noise_rate`). Predictions average the two networks.
- ``relabel``: two-step (or standard, without a clean set), then rounds in which the network's own
  answers replace the given labels and a fresh network trains on them (:mod:`nanofind.learn.relabel`).
- ``elr``: early-learning regularisation (Liu et al., NeurIPS 2020) as a newer baseline. The
  cross-entropy gains λ·log(1 − ⟨p, t⟩), where t is a running average of the network's own past
  predictions for each item: what the network learnt early, before memorising wrong labels, keeps
  pulling it back. It was chosen because it keeps every item, where co-teaching drops the hardest
  ones (the seed's reason why co-teaching trails at low error), and costs one network, not two.

Any method can train a **mirror-odd** network instead (:attr:`NoisyTrainingSettings.mirror_odd`,
:func:`mirror_odd_network`): for two classes that are each other's mirror image (handedness), its
logit difference is g(x) − g(mirror(x)), so the mirror of any image gets exactly the opposite
probabilities. A constant answer is impossible, and what the network can learn is only what
changes sign under the mirror. At 40 % wrong labels the plain network sat at chance on one seed of
three for 100 epochs; the mirror-odd one left it within 20 (docs/benchmarks.md).

Images are (n, side, side) float32, already normalised (:func:`nanofind.classify.image_classifier.
prepare_images`); labels are class indices 0…K−1.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np

from nanofind.errors import NanofindInputError

METHODS = ("standard", "two-step", "coteaching", "elr", "relabel")
#: Methods whose checkpoint is the epoch of best validation accuracy against the noisy labels.
#: With symmetric noise at rate ε the noisy accuracy is ε + (1 − 2ε)·(clean accuracy), so it ranks
#: epochs as the clean accuracy would; the validation loss does not, once a network that has learnt
#: the true classes grows confident and its loss on the wrongly labelled items soars (measured on
#: discs and rings at 30 % error: co-teaching's validation loss rose from 0.70 to 2.8 while its
#: clean accuracy rose from 0.5 to 0.85). The standard and two-step networks keep the seed's
#: validation-loss checkpoint. Epochs before ``ramp_epochs`` are not candidates.
ACCURACY_CHECKPOINT = ("coteaching", "elr")
#: A network that died in training (:func:`answers_nothing`) is trained afresh from new weights, a
#: new validation split and a new augmentation stream (seed + ``RESTART_SEED_STEP`` per restart),
#: at most this many times.
MAX_RESTARTS = 2
RESTART_SEED_STEP = 104_729
#: Largest spread of a network's answers over images (logit units) at which it counts as dead.
DEAD_LOGIT_SPREAD = 1e-3
#: Mirror-odd networks (:attr:`NoisyTrainingSettings.mirror_odd`) keep their last epoch, whatever the
#: method: their noisy validation loss rises as they grow confident while the clean accuracy holds
#: (two-step at 40 % error, chiral set, seed 0: best-loss epoch 2, clean accuracy 0.91; last epoch 0.93),
#: and 100 mirrored validation pairs rank epochs by noisy accuracy only to about ±0.05.
Method = Literal["standard", "two-step", "coteaching", "elr", "relabel"]
#: Augmented images a network should see when the number of epochs is not given: 100 epochs of the
#: benchmark's 1800 chiral images. At 40 % wrong labels that many lifted two seeds of three from
#: chance or 0.69 to 0.91–0.94 (two-step) where 25 epochs did not (docs/benchmarks.md).
DEFAULT_IMAGES_SEEN = 180_000
#: Bounds of :func:`default_epochs`.
DEFAULT_EPOCH_RANGE = (25, 200)


def default_epochs(n_items: int) -> int:
    """Epochs for ``n_items`` training images when none are given: :data:`DEFAULT_IMAGES_SEEN` seen, within bounds.

    Label noise weakens the signal per image (at error ε to a 1 − 2ε majority), so the number of
    images seen, not of epochs, decides whether a network learns it.
    """
    low, high = DEFAULT_EPOCH_RANGE
    return int(np.clip(math.ceil(DEFAULT_IMAGES_SEEN / max(n_items, 1)), low, high))


@dataclass(frozen=True)
class NoisyTrainingSettings:
    """How to train (epochs, batch, learning rate of Adam, and each method's own settings).

    The seed's values: batch 32 and 100 epochs (standard, Keras), batch 128 and 40 epochs
    (co-teaching), learning rate 10⁻³, 10 clean epochs for two-step. The defaults here are shorter,
    sized for 2 CPU cores, with a larger step to make up (measured on 1000 mirrored pairs of
    simulated chiral particles: 25 epochs at batch 128 and 3·10⁻³ reached the clean accuracy of
    40 epochs at batch 64 and 2·10⁻³); benchmarks/bench_label_noise.py uses them. Sets of a few
    hundred images take few steps per epoch and want more epochs (``--epochs``). Two-step's clean
    stage runs 20 epochs (the seed's 10 left its network at chance more often) and its noisy stage
    a third of the learning rate, so that the noisy labels refine what the clean set taught rather
    than overwrite it (at 40 % error on the chiral set, seed 0: clean accuracy 0.845 → 0.895).
    """

    method: Method = "coteaching"
    epochs: int = 25
    batch_size: int = 128
    learning_rate: float = 3e-3
    noise_rate: float | None = None  #: co-teaching's final forget rate; None: estimated
    ramp_epochs: int = 10  #: co-teaching: epochs over which the forget rate ramps up (Han et al.'s T_k)
    clean_epochs: int = 20  #: two-step: epochs on the clean set
    clean_samples_per_epoch: int = 288  #: two-step: augmented clean samples per epoch (the seed's 288)
    noisy_stage_lr_factor: float = 0.3  #: two-step: learning rate of the noisy stage, relative
    validation_fraction: float = 0.1
    elr_lambda: float = 3.0
    elr_beta: float = 0.7
    #: conv blocks of :func:`chapter5_network`, one per entry; ``(16, 32)`` is the seed's network.
    #: A third block lifted relabel at 40 % wrong labels on held-out chiral set b from 0.928 to 0.977
    #: (6 seeds each; docs/benchmarks.md) in about the same time (47 against 44 s a run, AMD EPYC).
    channels: tuple[int, ...] = (16, 32, 64)
    hidden: int = 64
    mirror_odd: bool = False  #: two classes that are each other's left-right mirror: :func:`mirror_odd_network`
    relabel_rounds: int = 1  #: relabel: rounds of training on the previous network's answers
    #: relabel: epochs of each round, relative to ``epochs``. Rounds as long as the first network:
    #: on a held-out chiral set rounds of 0.6 × epochs scored below their own first network at 0 %
    #: error (0.94 against 0.98 and 0.95), rounds of 1.0 × epochs level with it (docs/benchmarks.md).
    relabel_epoch_factor: float = 1.0
    #: in-plane turns of the augmentation: "quarter" turns ±5° (the seed's) or "any" angle, for
    #: images of objects that lie at any angle (``classify train --rotation auto`` chooses)
    rotation: Literal["any", "quarter"] = "quarter"
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise NanofindInputError(f"must be one of {', '.join(METHODS)}, got {self.method!r}", "--method")
        if self.noise_rate is not None and not 0 <= self.noise_rate < 1:
            raise NanofindInputError(f"must be >= 0 and < 1, got {self.noise_rate}", "--noise-rate")
        if self.relabel_rounds < 0 or self.relabel_epoch_factor <= 0:
            raise NanofindInputError(f"relabel rounds must be >= 0 and their epoch factor > 0, got "
                                     f"{self.relabel_rounds}, {self.relabel_epoch_factor}")
        if self.rotation not in ("any", "quarter"):
            raise NanofindInputError(f"must be 'any' or 'quarter', got {self.rotation!r}", "rotation")
        if self.epochs < 1 or self.batch_size < 1:
            raise NanofindInputError(f"epochs and batch size must be >= 1, got {self.epochs}, {self.batch_size}")
        if not 0 <= self.validation_fraction < 0.5:
            raise NanofindInputError(f"must be >= 0 and < 0.5, got {self.validation_fraction}", "validation_fraction")

    @property
    def total_epochs(self) -> int:
        """Epochs of all stages that report progress (relabel: the first network and every round)."""
        if self.method != "relabel":
            return self.epochs
        from nanofind.learn.relabel import relabel_round_epochs

        return self.epochs + self.relabel_rounds * relabel_round_epochs(self)

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def chapter5_network(n_classes: int, input_px: int, *, channels=(16, 32), hidden: int = 64, dropout: float = 0.5,
                     in_channels: int = 1):
    """The seed's classifier (Figure 5.2a): conv–ReLU–max-pool blocks, dense, dropout, dense.

    One block per entry of ``channels``: ``(16, 32)`` is the seed's network, where, as in the seed's
    PyTorch version, an average pooling follows the two blocks. Fewer than three blocks are average
    pooled down to ``input_px / 8`` px, so the dense layer sees at most that side. ``input_px`` must
    be divisible by 8 and by 2 to the number of blocks; ``in_channels`` input planes (1: a grey
    image). The softmax is left to the loss.
    """
    import torch.nn as nn

    blocks = len(channels)
    reduction = 2 ** max(blocks, 3)
    if blocks < 1 or input_px % reduction:
        raise ValueError(f"input_px must be divisible by {reduction} for {blocks} blocks, got {input_px}")
    layers, previous = [], in_channels
    for width in channels:
        layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        previous = width
    if blocks < 3:
        layers.append(nn.AvgPool2d(2 ** (3 - blocks)))
    return nn.Sequential(*layers, nn.Flatten(),
                         nn.Linear(previous * (input_px // reduction) ** 2, hidden), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(hidden, n_classes))


def mirror_odd_network(body):
    """Two-class logits (d/2, −d/2) with d = body(x) − body(x mirrored left-right), body one output.

    The mirror flips columns (x). The mirror image of any input gets exactly the opposite logits,
    so the two classes must be each other's mirror (right and left hand); in-plane turns are left to
    the training augmentation. The weights are the body's, under the prefix ``body.``.
    """
    import torch
    import torch.nn as nn

    class MirrorOddNetwork(nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            n = x.shape[0]
            g = self.body(torch.cat([x, torch.flip(x, dims=(3,))]))[:, 0]
            d = g[:n] - g[n:]
            return torch.stack([d / 2, -d / 2], 1)

    return MirrorOddNetwork(body)


def build_network(n_classes: int, input_px: int, *, channels=(16, 32, 64), hidden: int = 64, in_channels: int = 1,
                  mirror_odd: bool = False):
    """The network a :class:`NoisyTrainingSettings` asks for, in channels-last memory layout.

    Channels-last is a speed choice only: the max-pooling of the seed's network ran 1.6 times faster
    per training step in it (128 images of 32 px; 34 → 21 ms on 2 cores, 49 → 26 ms on one).
    """
    import torch

    if mirror_odd and n_classes != 2:
        raise NanofindInputError(f"a mirror-odd network needs exactly two classes (one the other's mirror), got "
                                 f"{n_classes}", "--mirror-odd")
    body = chapter5_network(1 if mirror_odd else n_classes, input_px, channels=channels, hidden=hidden,
                            in_channels=in_channels)
    net = mirror_odd_network(body) if mirror_odd else body
    return net.to(memory_format=torch.channels_last)


def affine_matrices(n: int, rng: np.random.Generator, *, zoom: float = 0.3, shear: float = 0.1,
                    small_turn_deg: float = 5.0, any_angle: bool = False) -> np.ndarray:
    """Random affine maps (n, 2, 3) of :func:`augment_batch`, output to input coordinates (−1…1).

    A turn by any angle (``any_angle``) or by a quarter turn plus up to ±``small_turn_deg`` (the
    seed's 180° and 5° rotations), a zoom within ±``zoom`` and a shear within ±``shear`` (the seed's
    30 % zoom, 10 % shear). The determinant is always positive: a mirror image would swap a
    handedness label, so there are no flips.

    Any angle suits particles, which lie at any in-plane angle: at 40 % wrong labels on a held-out
    chiral set it raised two-step's clean accuracy from 0.875 to 0.915 (mean of 4 seeds). It does
    not suit upright images, nor small shapes lined up with the pixel axes, whose interpolated
    turns blur them (docs/benchmarks.md).
    """
    if any_angle:
        angle = np.radians(rng.uniform(0.0, 360.0, n))
    else:
        angle = np.radians(90.0 * rng.integers(0, 4, n) + rng.uniform(-small_turn_deg, small_turn_deg, n))
    scale = rng.uniform(1 - zoom, 1 + zoom, n)
    s = rng.uniform(-shear, shear, n)
    cos, sin = np.cos(angle), np.sin(angle)
    m = np.zeros((n, 2, 3), dtype=np.float32)  # (rotation @ shear) / zoom
    m[:, 0, 0], m[:, 0, 1] = cos / scale, (cos * s - sin) / scale
    m[:, 1, 0], m[:, 1, 1] = sin / scale, (sin * s + cos) / scale
    return m


def augment_batch(x, rng: np.random.Generator, *, any_angle: bool = False):
    """A batch (n, channels, h, w) under :func:`affine_matrices` (bilinear, edges extended)."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    matrices = affine_matrices(x.shape[0], rng, any_angle=any_angle)
    grid = F.affine_grid(torch.from_numpy(matrices), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.contiguous(memory_format=torch.channels_last)


def forget_rate(epoch: int, noise_rate: float, ramp_epochs: int) -> float:
    """Co-teaching's fraction of each batch left out at ``epoch`` (0-based): τ·min(epoch / T_k, 1)."""
    return float(noise_rate) * min(epoch / max(ramp_epochs, 1), 1.0)


def small_loss_indices(losses, keep_fraction: float, labels=None):
    """Indices of the ``ceil(keep_fraction · n)`` smallest losses (at least one).

    With ``labels``, the fraction is kept within each given class. Ranking the whole batch lets
    the class the networks happen to fit first crowd out the other: its items are kept, the
    other's dropped, its loss rises further, and on a two-class problem both networks ended up
    predicting one class (measured on mirror-labelled digits at 30 % error).
    """
    import torch

    losses = losses.detach()
    if labels is None:
        k = max(1, math.ceil(keep_fraction * len(losses)))
        return torch.argsort(losses)[:k]
    chosen = []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c).flatten()
        k = max(1, math.ceil(keep_fraction * len(members)))
        chosen.append(members[torch.argsort(losses[members])[:k]])
    return torch.cat(chosen)


@dataclass
class NoisyTrainingResult:
    """Trained networks (one, or two for co-teaching) and what happened during training."""

    networks: list
    settings: NoisyTrainingSettings
    history: list[dict] = field(default_factory=list)  #: per epoch: stage, losses, kept fraction
    best_epoch: int = -1  #: epoch whose weights were kept (lowest validation loss)
    noise_rate: float | None = None  #: co-teaching's forget rate, given or estimated
    noise_rate_source: str = ""  #: "given", "estimated" or ""
    kept: np.ndarray | None = None  #: co-teaching: times each training item was passed on (both networks)
    offered: np.ndarray | None = None  #: co-teaching: times each training item was offered after the ramp
    validation_items: np.ndarray | None = None  #: indices of the items held out for checkpointing
    clean_stage_items: int = 0  #: two-step: items the first stage saw
    seconds: float = 0.0
    rounds: list[dict] = field(default_factory=list)  #: relabel: per round, method and labels changed
    round_networks: list[list] = field(default_factory=list)  #: relabel: each round's networks
    restarts: int = 0  #: times the network was trained afresh because it had died (:func:`answers_nothing`)

    def record(self) -> dict:
        """Plain-data summary for a model card."""
        return {"settings": self.settings.to_dict(), "best_epoch": self.best_epoch,
                "noise_rate": None if self.noise_rate is None else round(float(self.noise_rate), 4),
                "noise_rate_source": self.noise_rate_source, "clean_stage_items": self.clean_stage_items,
                "epochs_run": len(self.history), "seconds": round(self.seconds, 2), "relabel_rounds": self.rounds,
                "restarts": self.restarts,
                "final_validation_loss": self.history[-1].get("validation_loss") if self.history else None}


def _planes(images: np.ndarray) -> np.ndarray:
    """(n, side, side) or (n, channels, side, side) images as a contiguous float32 (n, channels, side, side)."""
    images = np.asarray(images)
    return np.ascontiguousarray(images[:, None] if images.ndim == 3 else images, dtype=np.float32)


def _split(n: int, fraction: float, groups, rng) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices; items of one group stay together."""
    groups = np.arange(n) if groups is None else np.asarray(groups)
    names = np.unique(groups)
    held = rng.permutation(names)[:int(round(fraction * len(names)))]
    val = np.isin(groups, held)
    return np.flatnonzero(~val), np.flatnonzero(val)


def _class_weights(labels: np.ndarray, n_classes: int):
    import torch

    counts = np.bincount(labels, minlength=n_classes).astype(float)
    w = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def _validation_scores(nets, x, y, weight) -> tuple[float, float]:
    """Mean loss and accuracy of the validation items against their (noisy) labels."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    if not len(y):
        return float("nan"), float("nan")
    with torch.no_grad():
        for net in nets:
            net.eval()
        p = sum(torch.softmax(net(x), 1) for net in nets) / len(nets)
        loss = float(F.nll_loss(torch.log(p).clamp_min(-30), y, weight=weight))
        return loss, float((p.argmax(1) == y).float().mean())


def _epoch_order(n: int, batch: int, rng) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[s:s + batch] for s in range(0, n, batch)]


def train_noisy(images: np.ndarray, labels: np.ndarray, n_classes: int, *,
                settings: NoisyTrainingSettings = NoisyTrainingSettings(),
                clean_images: np.ndarray | None = None, clean_labels: np.ndarray | None = None,
                groups=None, progress=None) -> NoisyTrainingResult:
    """Train a classifier of images with noisy labels by one of :data:`METHODS`.

    Parameters
    ----------
    images : ndarray of shape (n, side, side) or (n, channels, side, side)
        Normalised images; ``side`` divisible by 8.
    labels : ndarray of int, shape (n,)
        Given (possibly wrong) class indices.
    n_classes : int
        Number of classes.
    settings : NoisyTrainingSettings
        Method and hyper-parameters.
    clean_images, clean_labels : ndarray, optional
        The small clean set (required by ``two-step``; ignored otherwise).
    groups : array-like, optional
        Group of each item (an image and its mirror): groups stay on one side of the validation split.
    progress : callable, optional
        Called once per epoch (a restart runs its epochs again).

    A network that dies (answers every image alike) is trained again from fresh weights, at most
    :data:`MAX_RESTARTS` times; :attr:`NoisyTrainingResult.restarts` counts it.
    """
    if settings.method == "relabel":
        from nanofind.learn.relabel import train_relabel

        return train_relabel(images, labels, n_classes, settings=settings, clean_images=clean_images,
                             clean_labels=clean_labels, groups=groups, progress=progress)
    for restart in range(MAX_RESTARTS + 1):
        tried = settings if not restart else replace(settings, seed=settings.seed + RESTART_SEED_STEP * restart)
        result = _train_once(images, labels, n_classes, tried, clean_images, clean_labels, groups, progress)
        if not answers_nothing(result.networks, images):
            break
    result.restarts = restart
    return result


def answers_nothing(networks, images: np.ndarray, *, items: int = 256, tolerance: float = DEAD_LOGIT_SPREAD) -> bool:
    """Whether any network gives every one of (up to ``items``) images practically the same answer.

    The answer is the logits less their mean over classes (all that the softmax sees); a network
    answers nothing when, for every class, that varies by at most ``tolerance`` (logit units) over
    the images. Such a network is dead or nearly so (every unit of a layer, or all but a few,
    stopped by its ReLU), and no further training revives it: it happened to the three-block
    mirror-odd network on 2 of 5 seeds at 45 % wrong labels (logits exactly equal) and on 1 of 5 at
    50 % (spread under 10⁻⁴). A live network, even one that learnt nothing from labels independent
    of the image, spreads its logits over the images by far more through what it overfits.
    """
    import torch

    x = torch.from_numpy(_planes(images[:items])).contiguous(memory_format=torch.channels_last)
    if len(x) < 2:
        return False
    with torch.no_grad():
        for net in networks:
            net.eval()
            logits = net(x).double()
            answers = logits - logits.mean(1, keepdim=True)
            if float((answers.max(0).values - answers.min(0).values).max()) <= tolerance:
                return True
    return False


def _train_once(images, labels, n_classes, settings, clean_images, clean_labels, groups, progress):
    import torch

    start = time.perf_counter()
    labels = np.asarray(labels, dtype=np.int64)
    if images.ndim not in (3, 4) or len(images) != len(labels):
        raise ValueError(f"images must be (n, side, side) or (n, channels, side, side) with one label each, got "
                         f"{images.shape} and {labels.shape}")
    if settings.method == "two-step" and (clean_images is None or not len(clean_images)):
        raise NanofindInputError("two-step training needs a clean set (--clean CLEAN.csv)", "--clean")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng([settings.seed, 15])  # apart from any data drawn with the same seed
    train_idx, val_idx = _split(len(labels), settings.validation_fraction, groups, rng)
    x = torch.from_numpy(_planes(images)).contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(labels)
    weight = _class_weights(labels[train_idx], n_classes)
    side, planes = x.shape[-1], x.shape[1]
    count = 2 if settings.method == "coteaching" else 1
    nets = [build_network(n_classes, side, channels=settings.channels, hidden=settings.hidden, in_channels=planes,
                          mirror_odd=settings.mirror_odd) for _ in range(count)]
    optimisers = [torch.optim.Adam(net.parameters(), lr=settings.learning_rate) for net in nets]
    result = NoisyTrainingResult(nets, settings, validation_items=val_idx)
    if settings.method == "coteaching":
        if settings.noise_rate is None:
            rate, _ = estimate_noise_rate(images[train_idx], labels[train_idx], n_classes, settings=settings,
                                          groups=None if groups is None else np.asarray(groups)[train_idx])
            result.noise_rate, result.noise_rate_source = rate, "estimated"
        else:
            result.noise_rate, result.noise_rate_source = settings.noise_rate, "given"
        result.kept = np.zeros(len(labels), dtype=np.int64)
        result.offered = np.zeros(len(labels), dtype=np.int64)
    if settings.method == "two-step":
        result.clean_stage_items = _clean_stage(nets[0], optimisers[0], clean_images, clean_labels, n_classes,
                                                settings, rng, result)
        for group in optimisers[0].param_groups:
            group["lr"] = settings.learning_rate * settings.noisy_stage_lr_factor
    targets = torch.zeros(len(labels), n_classes) if settings.method == "elr" else None
    best, best_state = math.inf, None
    for epoch in range(settings.epochs):
        losses = []
        for batch in _epoch_order(len(train_idx), settings.batch_size, rng):
            idx = train_idx[batch]
            xb = augment_batch(x[idx], rng, any_angle=settings.rotation == "any")
            if settings.method == "coteaching":
                losses.append(_coteach_step(nets, optimisers, xb, y[idx], idx, weight, epoch, result))
            else:
                losses.append(_plain_step(nets[0], optimisers[0], xb, y[idx], idx, weight, targets, settings))
        val_loss, val_accuracy = _validation_scores(nets, x[val_idx], y[val_idx], weight)
        entry = {"epoch": epoch, "stage": "noisy", "train_loss": round(float(np.mean(losses)), 5),
                 "validation_loss": round(val_loss, 5), "validation_accuracy": round(val_accuracy, 4)}
        if settings.method == "coteaching":
            entry["forget_rate"] = round(forget_rate(epoch, result.noise_rate, settings.ramp_epochs), 4)
        result.history.append(entry)
        if not np.isfinite(val_loss):
            score = -epoch  # no validation items: keep the last epoch
        elif settings.mirror_odd:
            score = -epoch
        elif settings.method in ACCURACY_CHECKPOINT:
            # before the forget rate has ramped up (and the regulariser's targets have settled) an
            # early, barely trained epoch can win on a small validation set by chance
            warm = epoch < min(settings.ramp_epochs, settings.epochs - 1)
            score = math.inf if warm else -val_accuracy + 1e-6 * val_loss
        else:
            score = val_loss
        if score < best:
            best, result.best_epoch = score, epoch
            best_state = [{k: v.clone() for k, v in net.state_dict().items()} for net in nets]
        if progress is not None:
            progress()
    for net, state in zip(nets, best_state, strict=True):
        net.load_state_dict(state)
        net.eval()
    result.seconds = time.perf_counter() - start
    return result


def _plain_step(net, optimiser, xb, yb, idx, weight, targets, settings) -> float:
    import torch
    import torch.nn.functional as F  # noqa: N812

    net.train()
    logits = net(xb)
    loss = F.cross_entropy(logits, yb, weight=weight)
    if targets is not None:  # early-learning regularisation
        p = torch.softmax(logits, 1).clamp(1e-4, 1 - 1e-4)
        with torch.no_grad():
            t = settings.elr_beta * targets[idx] + (1 - settings.elr_beta) * (p / p.sum(1, keepdim=True))
            targets[idx] = t
        loss = loss + settings.elr_lambda * torch.log(1 - (t * p).sum(1)).mean()
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return float(loss.detach())


def _coteach_step(nets, optimisers, xb, yb, idx, weight, epoch, result) -> float:
    import torch.nn.functional as F  # noqa: N812

    for net in nets:
        net.train()
    logits = [net(xb) for net in nets]
    per_item = [F.cross_entropy(out, yb, weight=weight, reduction="none") for out in logits]
    rate = forget_rate(epoch, result.noise_rate, result.settings.ramp_epochs)
    chosen = [small_loss_indices(loss, 1 - rate, yb) for loss in per_item]
    if epoch >= result.settings.ramp_epochs:
        result.offered[idx] += 2
        for c in chosen:
            result.kept[idx[c.numpy()]] += 1
    total = 0.0
    # each network learns from the items its twin found easy
    for me, other in ((0, 1), (1, 0)):
        loss = per_item[me][chosen[other]].mean()
        optimisers[me].zero_grad()
        loss.backward()
        optimisers[me].step()
        total += float(loss.detach()) / 2
    return total


def _clean_stage(net, optimiser, clean_images, clean_labels, n_classes, settings, rng, result) -> int:
    """Two-step's first stage: only the clean items, augmented, for ``clean_epochs`` epochs."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    cx = torch.from_numpy(_planes(clean_images)).contiguous(memory_format=torch.channels_last)
    cy = torch.from_numpy(np.asarray(clean_labels, dtype=np.int64))
    weight = _class_weights(cy.numpy(), n_classes)
    per_epoch = max(settings.clean_samples_per_epoch, len(cy))
    for epoch in range(settings.clean_epochs):
        draws = rng.integers(0, len(cy), per_epoch)
        losses = []
        for s in range(0, per_epoch, settings.batch_size):
            idx = draws[s:s + settings.batch_size]
            net.train()
            xb = augment_batch(cx[idx], rng, any_angle=settings.rotation == "any")
            loss = F.cross_entropy(net(xb), cy[idx], weight=weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        result.history.append({"epoch": epoch, "stage": "clean", "train_loss": round(float(np.mean(losses)), 5)})
    return len(cy)


def predict_proba(networks, images: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """Class probabilities (n, K): softmax averaged over the networks and the four quarter turns."""
    import torch

    out = []
    with torch.no_grad():
        for net in networks:
            net.eval()
        for s in range(0, len(images), batch):
            xb = torch.from_numpy(_planes(images[s:s + batch])).contiguous(memory_format=torch.channels_last)
            p = sum(torch.softmax(net(torch.rot90(xb, k, dims=(2, 3))), 1) for net in networks for k in range(4))
            out.append((p / (4 * len(networks))).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def estimate_noise_rate(images: np.ndarray, labels: np.ndarray, n_classes: int, *,
                        settings: NoisyTrainingSettings | None = None, groups=None) -> tuple[float, dict]:
    """Fraction of wrong labels, estimated by confident learning (Northcutt et al., JAIR 2021).

    Two ``standard`` networks are trained for half the epochs, each on one half of the items (groups
    kept together), and predict the other half. Their checkpoint is the epoch of lowest validation loss, which on
    noisy labels falls before the networks memorise the wrong ones (the early-learning regime), so
    their out-of-half predictions follow the true classes. Class j's threshold t_j is the mean
    predicted probability of j over the items labelled j; an item labelled i counts as truly j when
    p_j ≥ t_j (the largest such j). The counts, rescaled so each row sums to the number of items
    labelled i, form the confident joint; its off-diagonal share is the noise rate.

    Parameters
    ----------
    images, labels, n_classes
        As for :func:`train_noisy`.
    settings : NoisyTrainingSettings, optional
        Epochs, batch, learning rate and seed of the two trainings (the method is ``standard``).
    groups : array-like, optional
        Items of one group (an image and its mirror) stay in one half.

    Returns
    -------
    rate : float
        Estimated fraction of wrong labels, 0–1.
    details : dict
        ``thresholds`` and the calibrated ``confident_joint`` (rows: given class, columns: estimated true class).
    """
    from dataclasses import replace

    settings = settings or NoisyTrainingSettings()
    settings = replace(settings, method="standard", noise_rate=None, epochs=max(5, settings.epochs // 2))
    seed = settings.seed
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed + 7919)
    names = np.unique(np.arange(len(labels)) if groups is None else np.asarray(groups), return_inverse=True)[1]
    half = rng.permutation(names.max() + 1)[: (names.max() + 1) // 2]
    fold = np.isin(names, half)
    probabilities = np.zeros((len(labels), n_classes))
    for part in (fold, ~fold):
        sub_groups = None if groups is None else np.asarray(groups)[~part]
        fit = train_noisy(images[~part], labels[~part], n_classes, settings=settings, groups=sub_groups)
        probabilities[part] = predict_proba(fit.networks, images[part])
    thresholds = np.array([probabilities[labels == j, j].mean() if np.any(labels == j) else 1.0
                           for j in range(n_classes)])
    above = probabilities >= thresholds
    masked = np.where(above, probabilities, -1.0)
    counted = above.any(axis=1)
    guess = np.argmax(masked, axis=1)
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, (labels[counted], guess[counted]), 1)
    given = np.bincount(labels, minlength=n_classes)
    rows = joint.sum(axis=1, keepdims=True)
    calibrated = np.where(rows > 0, joint / np.maximum(rows, 1) * given[:, None], 0.0)
    rate = float(calibrated.sum() - np.trace(calibrated)) / max(len(labels), 1)
    return rate, {"thresholds": thresholds.round(4).tolist(), "confident_joint": calibrated.round(1).tolist()}
