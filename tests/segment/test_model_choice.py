"""Which model ``--model auto`` picks, and the resampling it asks for, on images whose answer is known."""

import json

import numpy as np
import pytest

from nanofind.learn import model_file
from nanofind.learn.card import ModelCard
from nanofind.learn.scale_guard import plan_scale
from nanofind.segment import model_choice
from nanofind.segment.model_choice import ASSUMED_FRINGE_SPACING_A, choose_model

TYPICAL_PX = 48.0


@pytest.fixture()
def shipped(tmp_path, monkeypatch):
    """Two shipped models (cards only): the real HRTEM card and a bright-field card trained on ~48 px particles."""
    hrtem = json.loads(model_file.read_card("default").to_json())
    lowmag = {**hrtem, "imaging": "bright_field", "pixel_size_A": None, "pixel_size_range_A": [1.0, 50.0],
              "working_pixel_size_range_A": None, "hysteresis_low": None,
              "particle_diameter_px": [12.0, TYPICAL_PX, 160.0]}
    dirs = {}
    for name, record in (("hrtem", hrtem), ("lowmag", lowmag)):
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        (dirs[name] / "card.json").write_text(json.dumps(record))
    monkeypatch.setattr(model_file, "SHIPPED_MODELS", dirs)
    monkeypatch.setattr(model_choice, "SHIPPED_MODELS", dirs)
    return {name: ModelCard.read(d) for name, d in dirs.items()}


def _lattice(period_px: float, shape=(512, 512), seed=0) -> np.ndarray:
    """Crossed cosine fringes of ``period_px`` at 30° inside a disc, on noisy amorphous-like background."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape, dtype=np.float32)
    k = 2 * np.pi / period_px
    a = np.deg2rad(30)
    fringes = np.cos(k * (cols * np.cos(a) + rows * np.sin(a))) + np.cos(k * (cols * np.cos(a + 1.2)
                                                                             + rows * np.sin(a + 1.2)))
    disc = np.hypot(rows - shape[0] / 2, cols - shape[1] / 2) < shape[0] / 3
    return (100 + 20 * fringes * disc + rng.normal(0, 8, shape)).astype(np.float32)


def _blobs(diameter_px: float, shape=(512, 512), seed=0) -> np.ndarray:
    """Dark discs of one diameter, apart at random places (no superlattice), on a bright film, with Poisson noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape)
    image = np.full(shape, 200.0)
    centres: list[np.ndarray] = []
    for _ in range(20000):
        if len(centres) * diameter_px**2 > 0.15 * shape[0] * shape[1]:
            break
        c = rng.uniform(diameter_px / 2, np.array(shape) - diameter_px / 2)
        if all(np.hypot(*(c - o)) > 1.6 * diameter_px for o in centres):
            centres.append(c)
            image[np.hypot(rows - c[0], cols - c[1]) <= diameter_px / 2] = 110.0
    return rng.poisson(image).astype(np.float32)


def test_a_known_pixel_size_alone_chooses_without_measuring(shipped):
    d = choose_model(_blobs(20), 0.3, cards=shipped)
    assert d.model == "hrtem" and d.fringes is None and d.particle_scale is None and d.wanted_zoom is None
    d = choose_model(_lattice(8), 12.0, cards=shipped)
    assert d.model == "lowmag" and d.fringes is None and "12" in d.reason


@pytest.mark.parametrize("period_px", [4.0, 8.0])
def test_unknown_pixel_size_with_fringes_is_hrtem_at_its_own_scale_within_the_training_range(shipped, period_px):
    d = choose_model(_lattice(period_px), None, cards=shipped)
    assert d.model == "hrtem" and d.fringes["present"]
    estimate = ASSUMED_FRINGE_SPACING_A / period_px  # 0.59 Å and 0.29 Å: within 0.25-0.7 Å, trusted as they are
    assert d.estimated_pixel_size_A == pytest.approx(estimate, rel=0.05)
    assert plan_scale((512, 512), None, shipped["hrtem"], wanted_zoom=d.wanted_zoom).zoom == 1


def test_fringes_far_finer_than_the_training_pixels_shrink_the_image(shipped):
    from nanofind.segment.model_choice import ModelDecision, _fringe_zoom

    decision = ModelDecision("hrtem", model_file.SHIPPED_MODELS["hrtem"], "HRTEM")
    _fringe_zoom(decision, 20.0, shipped["hrtem"])  # 2.35 Å over 20 px: 0.12 Å per pixel
    lo = shipped["hrtem"].pixel_size_range_A[0]
    assert decision.estimated_pixel_size_A / decision.wanted_zoom == pytest.approx(lo, rel=0.01)
    assert "resampled" in decision.reason


@pytest.mark.parametrize("diameter_px", [5, 20, 48, 120])
def test_blobs_go_to_the_bright_field_model_resampled_to_its_typical_size(shipped, diameter_px):
    d = choose_model(_blobs(diameter_px), None, cards=shipped)
    assert d.model == "lowmag"
    assert d.particle_scale["diameter_px"] == pytest.approx(diameter_px, rel=0.25)
    resampled = diameter_px * d.wanted_zoom
    if 12 * 1.3 <= diameter_px <= 160 / 1.3:  # among the sizes the model was trained on: as it is
        assert d.wanted_zoom == 1
    else:  # brought into the core of them
        assert np.sqrt(12 * TYPICAL_PX) / 1.3 <= resampled <= np.sqrt(160 * TYPICAL_PX) * 1.3


def test_a_named_model_is_used_as_named(shipped):
    d = choose_model(_blobs(20), None, model="default", cards={"default": shipped["hrtem"]})
    assert d.model == "default" and d.wanted_zoom is None and d.reason == "named by the user"
    d = choose_model(_blobs(6), None, model="lowmag", cards=shipped)
    assert d.model == "lowmag" and d.wanted_zoom == pytest.approx(np.sqrt(12 * TYPICAL_PX) / 6, rel=0.25)


def test_without_a_bright_field_model_everything_goes_to_hrtem(shipped, monkeypatch, tmp_path):
    only = {"hrtem": model_file.SHIPPED_MODELS["hrtem"], "lowmag": tmp_path / "missing"}
    monkeypatch.setattr(model_choice, "SHIPPED_MODELS", only)
    assert choose_model(_blobs(20), 12.0).model == "hrtem"
    assert choose_model(_blobs(20), None).model == "hrtem"
