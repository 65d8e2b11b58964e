"""Outline refinement: a mask's outlines move to the image's half-contrast edge, and nothing else changes."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from nanofind.learn.card import ModelCard
from nanofind.segment.outline import (
    outline_mask,
    refine_outlines,
    smoothing_for,
    threshold_smoothing_for,
    typical_diameter_px,
)


def _disc(shape, centre, radius):
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def _micrograph(truth, contrast=-40.0, blur_px=1.0, noise=2.0, seed=0):
    """Particles ``contrast`` counts from a background of 100, blurred by the optics, with Gaussian noise."""
    rng = np.random.default_rng(seed)
    image = 100.0 + contrast * ndi.gaussian_filter(truth.astype(float), blur_px)
    return image + rng.normal(0, noise, truth.shape)


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("contrast", [-40.0, 40.0])  # dark particles (bright field) and bright ones
@pytest.mark.parametrize("offset_px", [-2, 2])  # the model's outline too far in, or too far out
def test_outline_moves_back_to_the_true_edge(contrast, offset_px):
    truth = _disc((96, 96), (48, 48), 12) | _disc((96, 96), (20, 70), 7)
    image = _micrograph(truth, contrast)
    grow = ndi.binary_dilation if offset_px > 0 else ndi.binary_erosion
    model = grow(truth, iterations=abs(offset_px))
    refined = refine_outlines(image, model, smoothing_px=1.0, band_px=3)
    assert _iou(model, truth) < 0.8
    assert _iou(refined, truth) > 0.93
    # the area of a blurred disc thresholded at half contrast is the disc's own, within a pixel of radius
    for centre, radius in (((48, 48), 12), ((20, 70), 7)):
        lab, _ = ndi.label(refined)
        area = (lab == lab[centre]).sum()
        assert abs(np.sqrt(area / np.pi) - radius) < 0.7


def test_particles_the_model_did_not_find_stay_unfound():
    found = _disc((96, 96), (30, 30), 10)
    missed = _disc((96, 96), (70, 70), 10)
    image = _micrograph(found | missed)
    refined = refine_outlines(image, ndi.binary_dilation(found, iterations=2))
    assert not refined[missed].any()
    assert _iou(refined, found) > 0.9


def test_without_contrast_the_model_outline_stands():
    rng = np.random.default_rng(1)
    image = 100 + rng.normal(0, 5, (80, 80))  # nothing but noise where the model saw a particle
    model = _disc((80, 80), (40, 40), 12)
    np.testing.assert_array_equal(refine_outlines(image, model), model)


def test_empty_and_full_masks_and_bad_input():
    image = np.zeros((16, 16))
    assert not refine_outlines(image, np.zeros((16, 16), bool)).any()
    assert refine_outlines(image, np.ones((16, 16), bool)).all()
    with pytest.raises(ValueError, match="one shape"):
        refine_outlines(np.zeros((8, 9)), np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="edge_fraction"):
        refine_outlines(image, np.zeros((16, 16), bool), edge_fraction=1.5)


def test_typical_diameter_and_smoothing():
    mask = _disc((128, 128), (30, 30), 10) | _disc((128, 128), (90, 90), 10) | _disc((128, 128), (30, 90), 20)
    assert typical_diameter_px(mask) == pytest.approx(20.0, rel=0.05)  # the median of 20, 20 and 40 px
    assert typical_diameter_px(np.zeros((8, 8), bool)) is None
    assert smoothing_for(5) == 0.7 and smoothing_for(200) == 1.5 and smoothing_for(14) == pytest.approx(1.0)
    assert threshold_smoothing_for(16) == 2.0 and threshold_smoothing_for(120) == pytest.approx(10.0)


def _card(**extra):
    record = {"task": "segmentation", "architecture": "unet", "normalisation": {},
              "pixel_size_A": None, "threshold": 0.5, **extra}
    return ModelCard.model_validate(record)


@pytest.mark.parametrize("radius, refined", [(8, True), (30, False)])
def test_outline_mask_refines_only_small_particles_and_only_when_the_card_asks(radius, refined):
    truth = _disc((128, 128), (64, 64), radius)
    image = _micrograph(truth)
    probability = ndi.binary_dilation(truth, iterations=2).astype(np.float32)  # a halo of 2 px
    plain = outline_mask(_card(), probability, image)
    np.testing.assert_array_equal(plain, probability >= 0.5)
    record = {}
    asked = outline_mask(_card(refine_outlines_below_px=32), probability, image, record=record)
    assert record["outlines_refined"] == refined
    assert record["threshold_outlines"] == 1  # from 15 px up, the threshold outline of the twin particle is taken
    assert _iou(asked, truth) > _iou(plain, truth) + 0.05
    np.testing.assert_array_equal(outline_mask(_card(refine_outlines_below_px=32), probability), plain)


def test_threshold_twins_replace_network_particles_and_nothing_else():
    from nanofind.segment.outline import adopt_threshold_outlines

    shape = (100, 100)
    network = _disc(shape, (25, 25), 10) | _disc(shape, (25, 70), 8) | _disc(shape, (75, 30), 6) | \
        _disc(shape, (75, 44), 6)
    twin = _disc(shape, (25, 25), 9.5)  # the same particle, half a pixel tighter: IoU 0.92
    too_different = _disc(shape, (25, 70), 5)  # IoU 0.4
    merged = _disc(shape, (75, 30), 7) | _disc(shape, (75, 44), 7) | (np.indices(shape)[0] == 75) & \
        (np.indices(shape)[1] > 30) & (np.indices(shape)[1] < 44)  # one threshold blob over two network particles
    unseen = _disc(shape, (80, 85), 8)  # the network found nothing there
    adopted, n = adopt_threshold_outlines(network, twin | too_different | merged | unseen)
    assert n == 1
    np.testing.assert_array_equal(adopted[:50, :50], twin[:50, :50])  # the twin's outline was taken
    np.testing.assert_array_equal(adopted[50:], network[50:])  # a merged blob and an unseen one change nothing
    np.testing.assert_array_equal(adopted[:50, 50:], network[:50, 50:])
    assert adopt_threshold_outlines(network, np.zeros(shape, bool))[1] == 0
    # the same particle by the rule evaluate matches particles with (IoU over 0.5): a network outline
    # 2 px wide of a 16 px particle (IoU 0.64) is replaced, a threshold particle of a third the area is not
    wide = _disc(shape, (50, 50), 10)
    assert adopt_threshold_outlines(wide, _disc(shape, (50, 50), 8))[1] == 1
    assert adopt_threshold_outlines(wide, _disc(shape, (50, 50), 5.5))[1] == 0


def test_outline_mask_takes_the_threshold_outline_from_15_px_up():
    # discs of 10 px radius (20 px across, refined) and 40 px radius (80 px, past the refinement
    # limit): threshold and network agree, the threshold's outline is kept; discs of 3 px radius
    # (6 px across): refined, no threshold
    for radius, expect_threshold in ((10, True), (40, True), (3, False)):
        truth = _disc((256, 256), (60, 60), radius) | _disc((256, 256), (180, 170), radius)
        image = _micrograph(truth, blur_px=0.7, noise=1.0)
        probability = ndi.binary_dilation(truth, iterations=1).astype(np.float32)
        record = {}
        mask = outline_mask(_card(refine_outlines_below_px=40), probability, image, record=record)
        assert record["outlines_refined"] == (radius < 20)
        assert ("threshold_outlines" in record) is expect_threshold
        if expect_threshold:
            assert record["threshold_outlines"] == 2
        assert _iou(mask, truth) > 0.85


def test_threshold_outlines_of_large_noisy_particles_follow_the_edge():
    # a particle 100 px across in noise as strong as its contrast: on the image smoothed at a 12th
    # of the diameter, the threshold outline runs everywhere between 1.5 px inside and 2.5 px
    # outside the true edge (Otsu sits a little outward); smoothed at 2 px only (the fixed
    # smoothing used before), it leaves holes or spurs
    from nanofind.segment.baselines import otsu_mask
    from nanofind.segment.outline import adopt_threshold_outlines

    truth = _disc((256, 256), (128, 128), 50)
    inner, outer = _disc(truth.shape, (128, 128), 48.5), _disc(truth.shape, (128, 128), 52.5)
    probability = ndi.binary_dilation(truth, iterations=3).astype(np.float32)  # the network's 3 px halo
    strays_at_2_px = 0
    for seed in range(4):
        image = _micrograph(truth, contrast=-20.0, blur_px=1.0, noise=20.0, seed=seed)
        record = {}
        mask = outline_mask(_card(refine_outlines_below_px=40), probability, image, record=record)
        assert record["threshold_outlines"] == 1 and not record["outlines_refined"]
        assert not (mask & ~outer).any() and not (inner & ~mask).any()
        fixed = adopt_threshold_outlines(probability > 0.5, otsu_mask(image, smooth_px=2.0))[0]
        strays_at_2_px += int((fixed & ~outer).sum() + (inner & ~fixed).sum())
    assert strays_at_2_px > 0
