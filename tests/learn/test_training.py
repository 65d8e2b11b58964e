import csv
import json
import math

import numpy as np
import pytest
import torch

from nanofind.errors import NanofindInputError
from nanofind.learn.augment import NO_AUGMENTATION, Augmentation, random_crops
from nanofind.learn.card import ModelCard, Normalisation
from nanofind.learn.data import LabelledImage, load_folder, split
from nanofind.learn.losses import SegmentationLoss, border_weights
from nanofind.learn.model_file import load_model, save_model
from nanofind.learn.networks import build_network
from nanofind.learn.train import COSINE_FLOOR, TrainConfig, learning_rate_at, train

TINY = {"architecture": "seed_unet", "options": {"width": 8}, "batch_size": 4, "crop_px": 64, "steps_per_epoch": 4,
        "precision": "fp32", "augmentation": NO_AUGMENTATION}


def _synthetic_items(n=6, size=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    items = []
    for k in range(n):
        cy, cx, r = rng.integers(16, 48), rng.integers(16, 48), rng.integers(6, 12)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r**2).astype(np.uint8)
        image = (rng.normal(0, 0.5, (size, size)) - 2.0 * mask).astype(np.float32)
        items.append(LabelledImage(image, mask, 0.5, f"synthetic#{k}", "simulated"))
    return items


@pytest.mark.parametrize("loss_name", ["ce", "dice_ce", "weighted_ce"])
def test_a_few_steps_lower_the_loss(loss_name):
    torch.manual_seed(0)
    items = _synthetic_items()
    images, masks = random_crops(items, np.full(len(items), 1 / len(items)), 6, 64, NO_AUGMENTATION,
                                 np.random.default_rng(1))
    model = build_network("seed_unet", width=8)
    loss_fn = SegmentationLoss(loss_name)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    before = float(loss_fn(model(images), masks).detach())
    for _ in range(15):
        loss = loss_fn(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = float(loss_fn(model(images), masks).detach())
    assert after < 0.8 * before, (before, after)


def test_train_writes_a_model_directory_and_resume_matches(tmp_path):
    items = _synthetic_items(8)
    tr, va = items[:6], items[6:]
    full = train(TrainConfig(**TINY, max_epochs=2), tr, va, tmp_path / "full", progress=False)
    # an interrupted run: one epoch, then resumed to two
    train(TrainConfig(**TINY, max_epochs=1), tr, va, tmp_path / "cut", progress=False)
    resumed = train(TrainConfig(**TINY, max_epochs=2), tr, va, tmp_path / "cut", resume=True, progress=False)
    # a cosine schedule's epoch count sets every learning rate, so a resume may not change it
    train(TrainConfig(**TINY, max_epochs=1, lr_schedule="cosine"), tr, va, tmp_path / "cosine", progress=False)
    with pytest.raises(NanofindInputError, match="different settings"):
        train(TrainConfig(**TINY, max_epochs=2, lr_schedule="cosine"), tr, va, tmp_path / "cosine", resume=True,
              progress=False)
    a, _ = load_model(tmp_path / "full")
    b, _ = load_model(tmp_path / "cut")
    for (k, va_), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va_, vb), k
    assert full.threshold == resumed.threshold
    for name in ("model.safetensors", "card.json", "history.csv", "learning_curve.png", "pr_curve.png"):
        assert (tmp_path / "full" / name).is_file(), name
    rows = list(csv.DictReader(open(tmp_path / "full" / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0 <= float(r["val_dice"]) <= 1 for r in rows)
    card = json.loads((tmp_path / "full" / "card.json").read_text())
    assert card["format"] == "nanofind-model/2" and card["task"] == "segmentation"
    assert card["architecture"] == "seed_unet" and card["pixel_size_A"] == 0.5 and 0 < card["threshold"] < 1
    assert card["normalisation"]["flatten_background"] is True and card["normalisation"]["median_filter_px"] == 3
    assert card["training"]["train_data"]["simulated"]["images"] == 6
    assert ModelCard.from_record(card) == full  # what train returns is what it wrote
    assert card["refine_outlines_below_px"] is None  # only bright-field models move outlines to the image's edges
    with pytest.raises(NanofindInputError, match="checkpoint"):
        train(TrainConfig(**TINY, max_epochs=2), tr, va, tmp_path / "full", progress=False)


def test_early_stopping_uses_min_delta_and_patience(tmp_path):
    items = _synthetic_items(6)
    # no loss can improve by min_delta = 10: the run stops after `patience` stale epochs
    card = train(TrainConfig(**{**TINY, "steps_per_epoch": 1}, min_delta=10.0, max_epochs=10, patience=2),
                 items[:4], items[4:], tmp_path / "m", progress=False)
    assert card.training.stopped == "early_stopping"
    assert card.training.epochs == 3  # epoch 1 sets the best, epochs 2 and 3 are stale


def test_cosine_schedule_falls_from_the_rate_to_its_floor():
    config = TrainConfig(learning_rate=1e-3, max_epochs=11, lr_schedule="cosine")
    rates = [learning_rate_at(config, e) for e in range(1, 12)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(COSINE_FLOOR * 1e-3)
    assert rates[5] == pytest.approx((1 + COSINE_FLOOR) / 2 * 1e-3)  # half-way down at the middle epoch
    assert all(a > b for a, b in zip(rates[:-1], rates[1:], strict=True))
    assert learning_rate_at(TrainConfig(learning_rate=1e-3, max_epochs=11), 7) == 1e-3


def test_ramp_augmentation_adds_a_plane_no_larger_than_its_range():
    flat = LabelledImage(np.zeros((100, 100), np.float32), np.zeros((100, 100), np.uint8), 0.5, "flat", "simulated")
    only_ramp = Augmentation(rotate=False, flip=False, zoom=1.0, contrast=(1, 1), offset=0, gamma=(1, 1), noise=0,
                             blur_px=0, ramp=0.8)
    images, _ = random_crops([flat], np.ones(1), 16, 64, only_ramp, np.random.default_rng(0))
    spans = []
    for image in images[:, 0].numpy():
        # a plane: second differences vanish along both axes
        assert np.abs(np.diff(image, 2, axis=0)).max() < 1e-5 and np.abs(np.diff(image, 2, axis=1)).max() < 1e-5
        spans.append(np.hypot(image[0, -1] - image[0, 0], image[-1, 0] - image[0, 0]))
    assert max(spans) <= 0.8 + 1e-5 and max(spans) > 0.3


def test_safetensors_round_trip_and_no_pickle(tmp_path):
    model = build_network("seed_unet", width=8).eval()
    card = ModelCard(task="segmentation", architecture="seed_unet", options={"width": 8},
                     normalisation=Normalisation(flatten_background=False), pixel_size_A=0.5, threshold=0.5)
    save_model(tmp_path / "m", model, card)
    loaded, card2 = load_model(tmp_path / "m")
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert card2 == card
    # a pickle disguised as weights is refused, never loaded
    torch.save(model.state_dict(), tmp_path / "m" / "model.safetensors")
    with pytest.raises(NanofindInputError, match="model.safetensors"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "card.json").write_text(json.dumps({"architecture": "seed_unet"}))
    with pytest.raises(NanofindInputError, match="lacks normalisation, pixel_size_A"):
        load_model(tmp_path / "m")
    # a card whose classes do not match the weights' output channels is refused, naming the weights
    save_model(tmp_path / "m", model, card)
    (tmp_path / "m" / "card.json").write_text(
        json.dumps({**card.record(), "classes": ["background", "particle", "edge"]}))
    with pytest.raises(NanofindInputError, match="model.safetensors: weights do not fit"):
        load_model(tmp_path / "m")


def test_crops_keep_image_and_mask_aligned_and_zoom_scales_area():
    size = 200
    yy, xx = np.mgrid[0:size, 0:size]
    mask = ((yy - 100) ** 2 + (xx - 100) ** 2 <= 30**2).astype(np.uint8)
    item = LabelledImage(mask.astype(np.float32), mask, 0.5, "disc", "simulated")
    geometric = Augmentation(contrast=(1, 1), offset=0, gamma=(1, 1), noise=0, blur_px=0, ramp=0, zoom=1.5)
    images, masks = random_crops([item], np.ones(1), 8, 64, geometric, np.random.default_rng(3))
    agree = ((images[:, 0] > 0.5).long() == masks).float().mean()
    assert agree > 0.98
    # the whole disc (radius 30 px) inside a 200-px crop: rotation keeps its area, the zoom z scales it by z^2
    whole = Augmentation(contrast=(1, 1), offset=0, gamma=(1, 1), noise=0, blur_px=0, zoom=1.5)
    for seed in range(6):
        rng = _FixedCentre(np.random.default_rng(seed), 100)
        _, m = random_crops([item], np.ones(1), 1, 200, whole, rng)
        zoom = math.exp(rng.uniforms[0])  # the first uniform draw of a crop is its log-magnification
        expected = math.pi * (30 * zoom) ** 2
        assert abs(m.sum().item() - expected) < 0.04 * expected, (zoom, m.sum().item(), expected)


class _FixedCentre:
    """A generator that puts every crop at ``centre`` and records its uniform draws."""

    def __init__(self, rng, centre):
        self.rng, self.centre, self.uniforms = rng, centre, []

    def integers(self, *args, **kwargs):
        return self.centre

    def uniform(self, *args, **kwargs):
        value = self.rng.uniform(*args, **kwargs)
        self.uniforms.append(value)
        return value

    def __getattr__(self, name):
        return getattr(self.rng, name)


def test_border_weights_peak_in_gaps_between_particles():
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 5:25] = 1
    mask[10:30, 29:49] = 1  # a 4-pixel gap at columns 25..28
    w = border_weights(mask, w0=10, sigma_px=5)
    assert w[20, 26] > 5 * w[2, 55]
    single = np.zeros((40, 40), np.uint8)
    single[10:20, 10:20] = 1
    ws = border_weights(single)
    assert ws[single > 0].sum() == pytest.approx(ws[single == 0].sum(), rel=1e-5)


def test_folder_loading_and_cross_validation_split(labelled_folder):
    items = load_folder(labelled_folder)
    assert len(items) == 6 and all(x.domain == "real" and x.pixel_size_A is None for x in items)
    assert abs(float(np.median(items[0].image))) < 1e-5  # normalised: median 0
    folds = [split(items, (k, 3), seed=1)[1] for k in range(3)]
    held = [x.source for f in folds for x in f]
    assert sorted(held) == sorted(x.source for x in items)  # each image held out exactly once
    tr, va = split(items, 0.34, seed=1)
    assert len(va) == 2 and len(tr) == 4


def test_fast_median_equals_scipy():
    from scipy.ndimage import median_filter

    from nanofind.learn.preprocess import median3x3

    rng = np.random.default_rng(0)
    for image in (rng.normal(size=(37, 53)), rng.integers(0, 4, size=(20, 31)).astype(float), rng.normal(size=(3, 3))):
        np.testing.assert_array_equal(median3x3(image), median_filter(image, size=3, mode="reflect"))


def test_background_surface_recovers_uneven_illumination_under_particles():
    from nanofind.learn.preprocess import background_surface, normalise

    rng = np.random.default_rng(0)
    h, w = 512, 600
    y, x = np.mgrid[0:h, 0:w]
    illumination = 100 * (1 + 0.2 * (x / w - 0.5) + 0.1 * (y / h - 0.5) ** 2)
    image = illumination + rng.normal(0, 3, (h, w))
    particles = np.zeros((h, w), bool)
    for cy, cx, r in [(100, 100, 60), (300, 400, 120), (450, 100, 40)]:  # 20% of the field, dark
        particles |= (y - cy) ** 2 + (x - cx) ** 2 < r * r
    image[particles] -= 15
    surface = background_surface(image)
    assert np.abs(surface - illumination).max() < 0.5  # 0.5% of the level, although particles cover a fifth
    # flattened, the carbon reads the same on both sides of the ramp, while the particles stay dark
    flat = normalise(image)
    left, right = flat[:, :60][~particles[:, :60]], flat[:, -60:][~particles[:, -60:]]
    assert abs(np.median(left) - np.median(right)) < 0.1
    assert np.median(flat[particles]) < np.median(flat[~particles]) - 1.5
    # without flattening the ramp stays: the carbon is brighter on the right than on the left
    ramped = normalise(image, Normalisation(flatten_background=False))
    left, right = ramped[:, :60][~particles[:, :60]], ramped[:, -60:][~particles[:, -60:]]
    assert np.median(right) - np.median(left) > 1.0
    np.testing.assert_array_equal(normalise(image, Normalisation()), flat)
