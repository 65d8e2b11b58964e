import numpy as np
import pytest

from nanofind.analyze.review import review_signals


def _field(seed=0):
    """A flat grey field (128²) with one dark disc of radius 20 px, and the disc's mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:128]
    disc = (yy - 64) ** 2 + (xx - 40) ** 2 <= 20**2
    image = 150.0 - 60.0 * disc + rng.normal(0, 5, disc.shape)
    return image.astype(np.float32), disc


def test_a_sure_model_that_agrees_with_otsu_is_not_flagged():
    image, disc = _field()
    probability = np.where(disc, 0.97, 0.01)
    signals = review_signals(probability, disc, image)
    assert signals["otsu_agreement_dice"] > 0.9  # Otsu finds a dark disc on a flat field
    assert signals["unsure_fraction"] == 0.0
    assert not signals["review"] and signals["reason"] is None


def test_an_unsure_model_that_disagrees_with_otsu_is_flagged():
    image, disc = _field()
    elsewhere = np.zeros_like(disc)
    elsewhere[20:60, 80:120] = True  # 10 % of the field, nowhere near the disc
    probability = np.where(elsewhere, 0.5, 0.01)
    signals = review_signals(probability, elsewhere, image)
    assert signals["otsu_agreement_dice"] < 0.1
    assert signals["unsure_fraction"] == 1.0
    assert signals["possible_area_fraction"] == pytest.approx(elsewhere.mean(), abs=1e-5)
    assert signals["review"] and "unsure of 100%" in signals["reason"]


def test_a_few_unsure_specks_on_an_empty_field_are_not_in_doubt():
    rng = np.random.default_rng(1)
    image = (150.0 + rng.normal(0, 5, (128, 128))).astype(np.float32)
    probability = np.full(image.shape, 0.01)
    probability[10:13, 10:13] = 0.4  # 9 px: well under 1 % of the field
    signals = review_signals(probability, np.zeros(image.shape, bool), image)
    assert signals["unsure_fraction"] == 1.0 and not signals["review"]
