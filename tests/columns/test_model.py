"""Column-height model files, prediction on micrographs of other pixel sizes, and column elements."""

import json

import numpy as np
import pytest

from nanofind.columns.model import (
    CARD_FILE,
    WEIGHTS_FILE,
    height_card,
    load_height_model,
    predict_columns,
    save_height_model,
)
from nanofind.columns.training import build_height_network
from nanofind.errors import NanofindInputError


def tiny_model(tmp_path, **card_changes):
    net = build_height_network(1 + 2 * 4, "seed_unet", width=4)
    card = height_card(architecture="seed_unet", width=4, pixel_A=0.2, elements=("Ce", "O"), max_height=4,
                       radius_A=0.6, min_separation_A=0.9, training={"note": "test"})
    card.update(card_changes)
    return net, save_height_model(tmp_path / "model", net, card)


def test_a_saved_model_loads_with_the_same_answers(tmp_path):
    import torch

    net, folder = tiny_model(tmp_path)
    model = load_height_model(folder)
    assert model.elements == ("Ce", "O") and model.max_height == 4 and model.pixel_A == 0.2
    x = torch.randn(1, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), model.net(x))


def test_prediction_comes_back_in_the_micrographs_pixels(tmp_path):
    _, folder = tiny_model(tmp_path)
    model = load_height_model(folder)
    image = np.random.default_rng(0).normal(size=(90, 70)).astype(np.float32)
    found = predict_columns(model, image, 0.1)  # half the model's pixel: the network sees 45 x 35
    assert found.height_map.shape == (90, 70) and found.height_map.dtype == np.uint8
    assert found.height_map.max() <= 4
    assert len(found.x_px) == len(found.height) == len(found.element) == len(found.confidence)
    assert set(found.element) <= {"Ce", "O"}
    if len(found.x_px):
        assert found.x_px.max() <= 70 and found.y_px.max() <= 90


@pytest.mark.parametrize("change, message", [
    ({"task": "segmentation"}, "not for 'column_heights'"),
    ({"max_height": 7}, "unusable network weights"),
])
def test_a_model_of_another_task_or_shape_is_refused_in_one_line(tmp_path, change, message):
    _, folder = tiny_model(tmp_path, **change)
    with pytest.raises(NanofindInputError, match=message):
        load_height_model(folder)


def test_missing_or_broken_model_files_are_refused(tmp_path):
    with pytest.raises(NanofindInputError, match="not a model folder"):
        load_height_model(tmp_path)
    _, folder = tiny_model(tmp_path)
    (folder / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(NanofindInputError, match="unusable network weights"):
        load_height_model(folder)
    (folder / CARD_FILE).write_text("{broken")
    with pytest.raises(NanofindInputError, match="unreadable card"):
        load_height_model(folder)


def test_the_shipped_model_is_small_and_says_what_made_it():
    model = load_height_model("default")
    card = model.card
    assert model.elements == ("Ce", "O")
    assert card["training"]["train"] and card["training"]["held_out_scores"]
    from nanofind.columns.model import DEFAULT_DIR

    assert (DEFAULT_DIR / WEIGHTS_FILE).stat().st_size <= 20e6
    json.dumps(card)


def test_ceo2_110_columns_get_their_elements_from_the_rebuilt_scene():
    from scipy.spatial import cKDTree

    from nanofind.columns.training import column_sublattices
    from nanofind.simulate.pipeline import simulate_group
    from nanofind.simulate.recipe import parse_simulation_recipe

    recipe = parse_simulation_recipe({
        "substrate": {"thickness_A": 6},
        "particles": [{"material": "CeO2", "diameter_A": 22, "zone_axis": [1, 1, 0], "in_plane_deg": 0}],
        "detector": {"shape": [64, 64], "pixel_size_A": 0.6, "dose_e_per_A2": "inf"},
        "multislice": {"mode": "phase_object", "max_sampling_A": 0.3, "margin_A": 4}})
    sample = simulate_group(recipe, seed=3, group=0)[0]
    lattice = column_sublattices(sample, ("Ce", "O"))
    xy = np.asarray(sample.columns)[:, :2]
    ce, o = xy[lattice == 0], xy[lattice == 1]
    assert 0.25 < len(ce) / len(xy) < 0.42  # CeO2: two O columns for every Ce column along [110]
    # along [110] every O column sits a/4 = 1.35 Å from a Ce column, and Ce columns are >= 3.3 Å apart
    distance, _ = cKDTree(ce).query(o)
    assert np.median(distance) == pytest.approx(5.411 / 4, abs=0.05)
    assert cKDTree(ce).query(ce, k=2)[0][:, 1].min() > 3.2
