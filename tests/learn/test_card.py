import json
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import median_filter

from nanofind.errors import NanofindInputError
from nanofind.learn.card import ModelCard, Normalisation, particle_mask
from nanofind.learn.model_file import read_card
from nanofind.learn.preprocess import normalise

#: A verbatim copy of the shipped model's card as it was written in the first layout (nanofind-model/1).
CARD_V1 = Path(__file__).with_name("data") / "card_v1.json"


def _v1() -> dict:
    return json.loads(CARD_V1.read_text())


def _write(folder: Path, record: dict) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "card.json").write_text(json.dumps(record))
    return folder


def _ramp(shape=(64, 201), slope=2.0, offset=100.0) -> np.ndarray:
    """An illumination tilted along x alone, constant down each column (float32)."""
    return np.tile(offset + slope * np.arange(shape[1], dtype=np.float32), (shape[0], 1))


def _centred_scaled(image: np.ndarray) -> np.ndarray:
    """The last step of every normalisation, by hand: minus the median, over half the 16th-84th percentile range."""
    lo, mid, hi = np.percentile(image, (16, 50, 84))
    return (image - mid) / ((hi - lo) / 2)


def test_the_first_layout_of_the_shipped_card_migrates_with_its_numbers(tmp_path):
    old = _v1()
    assert old["format"] == "nanofind-model/1" and "task" not in old  # the fixture is the old layout
    card = read_card(_write(tmp_path / "v1", old))
    assert card.format == "nanofind-model/2" and card.task == "segmentation"
    assert card.normalisation == Normalisation(median_filter_px=3, flatten_background=True)
    assert card.classes == ["background", "particle"] and card.foreground_index == 1 and card.output_channels == 2
    assert card.threshold == old["threshold"] == 0.42
    assert card.pixel_size_A == 0.35 and card.pixel_size_range_A == [0.25, 0.7]
    assert card.working_pixel_size_range_A == [0.25, 0.35]
    assert card.working_pixel_size_note == old["working_pixel_size_note"]
    assert card.training.epochs == 12 and card.training.best_epoch == 3
    assert card.training.init == old["training"]["init"]
    record = card.record()
    for key in ("stages", "data_commands", "reproduce"):  # the shipped card's extra training keys survive
        assert record["training"][key] == old["training"][key], key
    assert record["metrics"] == old["metrics"]
    # the shipped card is that migration, number for number (plus what later cards added: the micrographs it is
    # for and the hysteresis of issue 13), and its record reads back to the same card
    shipped = read_card("default")
    assert shipped.imaging == "hrtem" and card.imaging is None
    assert shipped.model_copy(update={"imaging": None, "hysteresis_low": None}) == card
    assert ModelCard.from_record(json.loads(shipped.to_json())) == shipped


def test_a_first_layout_card_without_background_is_not_flattened(tmp_path):
    old = {**_v1(), "normalisation": {"median_filter_px": 3, "centre": "median",
                                      "scale": "half the 16th-84th percentile range"}}
    card = read_card(_write(tmp_path / "old", old))
    assert card.normalisation.flatten_background is False and card.normalisation.median_filter_px == 3
    image = _ramp()
    # a ramp along x survives a 3 x 3 median (mirrored edges included) and, unflattened, only shifts and scales
    np.testing.assert_allclose(normalise(image, card.normalisation), _centred_scaled(image), rtol=1e-6, atol=1e-6)
    # flattening would have taken the tilt away: the card of today's model does
    flat = normalise(image + np.random.default_rng(0).normal(0, 1, image.shape).astype(np.float32),
                     read_card("default").normalisation)
    assert abs(np.median(flat[:, :20]) - np.median(flat[:, -20:])) < 0.3
    # a first-layout card without a median size had the 3-pixel median all the same
    bare = read_card(_write(tmp_path / "bare", {**_v1(), "normalisation": {}}))
    assert bare.normalisation == Normalisation(median_filter_px=3, flatten_background=False)


def test_median_filter_sizes_are_applied():
    rng = np.random.default_rng(1)
    image = rng.normal(100, 5, (40, 50)).astype(np.float32)
    image[10, 10] = 1e4  # an X-ray spike
    unflattened = {"flatten_background": False}
    none = normalise(image, Normalisation(median_filter_px=None, **unflattened))
    np.testing.assert_allclose(none, _centred_scaled(image), rtol=1e-5, atol=1e-5)
    assert none[10, 10] > 100  # left alone, the spike stays
    np.testing.assert_array_equal(normalise(image, Normalisation(median_filter_px=1, **unflattened)), none)
    five = normalise(image, Normalisation(median_filter_px=5, **unflattened))
    np.testing.assert_allclose(five, _centred_scaled(median_filter(image, size=5, mode="reflect")), rtol=1e-5,
                               atol=1e-5)
    assert abs(five[10, 10]) < 5
    three = normalise(image, Normalisation(median_filter_px=3, **unflattened))
    np.testing.assert_allclose(three, _centred_scaled(median_filter(image, size=3, mode="reflect")), rtol=1e-5,
                               atol=1e-5)
    # the default is the shipped model's normalisation
    np.testing.assert_array_equal(normalise(image), normalise(image, read_card("default").normalisation))
    assert "5 × 5 px median" in Normalisation(median_filter_px=5).describe()
    assert "not flattened" in Normalisation(flatten_background=False).describe()


@pytest.mark.parametrize(("change", "field"), [
    ({"threshold": "high"}, "threshold"),
    ({"threshold": 1.5}, "threshold"),
    ({"pixel_size_A": -1}, "pixel_size_A"),
    ({"pixel_size_range_A": [0.7, 0.25]}, "pixel_size_range_A"),
    ({"working_pixel_size_range_A": [0.3]}, "working_pixel_size_range_A"),
    ({"normalisation": {"median_filter_px": 4, "flatten_background": True}}, "normalisation.median_filter_px"),
    ({"normalisation": {"median_filter_px": 3, "flatten_background": "yes"}}, "normalisation.flatten_background"),
    ({"normalisation": {"flatten_background": True, "blur": 2}}, "normalisation.blur"),
    ({"task": "detection"}, "task"),
    ({"format": "nanofind-model/9"}, "format"),
    ({"threshold": None}, "threshold"),
    ({"classes": ["background", "edge"]}, "classes"),
    ({"input_channels": 0}, "input_channels"),
    ({"hysteresis_low": 0.9}, "hysteresis_low"),
    ({"imaging": "sem"}, "imaging"),
    ({"refine_outlines_below_px": -5}, "refine_outlines_below_px"),
])
def test_bad_fields_give_one_line_naming_the_file_and_field(tmp_path, change, field):
    record = {**json.loads(read_card("default").to_json()), **change}
    folder = _write(tmp_path / "m", record)
    with pytest.raises(NanofindInputError) as info:
        read_card(folder)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{folder / 'card.json'}: model card")
    assert field in message


def test_missing_fields_are_listed_and_broken_files_named(tmp_path):
    record = json.loads(read_card("default").to_json())
    del record["architecture"], record["pixel_size_A"]
    with pytest.raises(NanofindInputError, match="model card lacks architecture, pixel_size_A"):
        read_card(_write(tmp_path / "a", record))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "card.json").write_text("{not json")
    with pytest.raises(NanofindInputError, match="b/card.json: unreadable model card"):
        read_card(tmp_path / "b")
    with pytest.raises(NanofindInputError, match="no card.json"):
        read_card(tmp_path / "c")


def test_other_tasks_name_their_outputs():
    common = {"architecture": "seed_unet", "normalisation": Normalisation(), "pixel_size_A": None}
    classifier = ModelCard(task="classification", classes=["fcc", "decahedron", "icosahedron"],
                           calibration={"temperature": 1.4}, **common)
    assert classifier.output_channels == 3 and classifier.threshold is None
    with pytest.raises(ValueError, match="no 'particle' class"):
        _ = classifier.foreground_index
    heights = ModelCard(task="column_heights", classes=["height_atoms"], **common)
    assert heights.output_channels == 1
    with pytest.raises(ValueError, match="classes must name"):
        ModelCard(task="column_heights", **common)
    # a segmentation card may order its classes otherwise: the foreground is found by name
    flipped = ModelCard(task="segmentation", classes=["particle", "background"], threshold=0.5, **common)
    assert flipped.foreground_index == 0


def _faint_particle_and_specks() -> np.ndarray:
    """A disc whose core is sure (0.9) inside a faint rim (0.3), and a separate faint speck with no sure core."""
    rows, cols = np.indices((64, 64))
    prob = np.zeros((64, 64), np.float32)
    r = np.hypot(rows - 20, cols - 20)
    prob[r <= 10] = 0.3
    prob[r <= 5] = 0.9
    prob[np.hypot(rows - 50, cols - 50) <= 4] = 0.3
    return prob


def test_hysteresis_keeps_a_sure_particles_faint_rim_and_drops_faint_specks():
    prob = _faint_particle_and_specks()
    rows, cols = np.indices(prob.shape)
    plain = particle_mask(prob, 0.42)
    grown = particle_mask(prob, 0.42, hysteresis_low=0.2)
    assert plain.sum() == (np.hypot(rows - 20, cols - 20) <= 5).sum()
    assert grown.sum() == (np.hypot(rows - 20, cols - 20) <= 10).sum()  # the whole particle, rim included
    assert not grown[50, 50]  # the speck has no pixel the model is sure of


def test_plain_thresholding_keeps_pixels_at_the_threshold():
    prob = np.array([[0.41, 0.42, 0.43]], np.float32)
    assert particle_mask(prob, 0.42).tolist() == [[False, True, True]]
    assert particle_mask(prob, 0.42, hysteresis_low=0.42).tolist() == [[False, True, True]]
    assert particle_mask(prob, np.float32(0.42), hysteresis_low=0.41).tolist() == [[True, True, True]]


def test_the_card_applies_its_own_hysteresis_and_a_given_threshold():
    card = read_card("default")
    assert card.hysteresis_low is not None and card.hysteresis_low < card.threshold
    prob = _faint_particle_and_specks()
    assert np.array_equal(card.particle_mask(prob), particle_mask(prob, card.threshold, card.hysteresis_low))
    assert card.particle_mask(prob, threshold=0.95).sum() == 0  # no pixel reaches it
