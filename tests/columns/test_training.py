"""The column-height network's data, training loop and scores, on tiny synthetic images."""

from types import SimpleNamespace

import numpy as np
import pytest

from nanofind.columns.synthetic import lattice_positions, render_columns
from nanofind.columns.training import (
    example_from_sample,
    expected_calibration_error,
    read_examples,
    score_heights,
    train_height_network,
)


def fake_sample(seed, pixel_A=0.15, shape=(96, 96), noise=0.05):
    """Columns whose brightness is their height: the simplest image a network can read heights from."""
    rng = np.random.default_rng(seed)
    xy_px = lattice_positions(shape, 3.0 / pixel_A, angle_deg=rng.uniform(0, 90), margin_px=2, rng=rng)
    heights = rng.integers(1, 4, len(xy_px))
    image = render_columns(shape, xy_px, sigma_px=0.35 / pixel_A, amplitude=heights) + rng.normal(0, noise, shape)
    columns = np.column_stack([xy_px * pixel_A, heights, np.zeros(len(heights))])
    return SimpleNamespace(image=image.astype(np.float32), columns=columns, params={"pixel_size_A": pixel_A})


def test_examples_are_resampled_to_the_network_pixel_with_exact_targets():
    sample = fake_sample(0, pixel_A=0.15)
    ex = example_from_sample(sample, pixel_A=0.12, max_height=3)
    assert ex.image.shape == (120, 120)  # 96 px × 0.15 / 0.12
    assert abs(ex.image.mean()) < 1e-4 and ex.image.std() == pytest.approx(1.0, rel=1e-3)
    x, y = ex.columns_px[5]
    assert ex.targets.probabilities[ex.heights[5], int(y), int(x)] > 0.5  # the column's class at its pixel
    assert np.allclose(ex.columns_px, sample.columns[:, :2] / 0.12)


def test_a_short_training_learns_heights_that_the_image_shows():
    examples = [example_from_sample(fake_sample(s), pixel_A=0.15, max_height=3) for s in range(4)]
    net, losses = train_height_network(examples, steps=150, crop_px=64, batch_size=4, architecture="seed_unet",
                                       width=8, seed=1)
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5])  # soft targets keep the loss above zero
    score = score_heights(net, [example_from_sample(fake_sample(9), pixel_A=0.15, max_height=3)], pixel_A=0.15)
    at_truth = score["at_truth"]
    assert at_truth["columns"] >= 15 and at_truth["exact"] >= 0.8  # on an unseen image; chance is 1/3
    assert score["recall"] >= 0.8 and score["found"]["exact"] >= 0.8  # the columns it finds itself
    # calibration: a network whose logits are doubled needs twice the temperature
    import torch

    from nanofind.columns.training import fit_temperature

    class Doubled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return 2 * self.inner(x)

    held_out = [example_from_sample(fake_sample(s, noise=0.25), pixel_A=0.15, max_height=3) for s in (9, 10)]
    grid = np.geomspace(0.01, 8.0, 229)  # steps of 3 %
    plain = fit_temperature(net, held_out, pixel_A=0.15, candidates=grid)["temperature"]
    doubled = fit_temperature(Doubled(net), held_out, pixel_A=0.15, candidates=grid)["temperature"]
    assert 0.01 < plain < 4 and doubled == pytest.approx(2 * plain, rel=0.07)


def test_crops_larger_than_an_image_pad_it_with_background_of_no_weight():
    from nanofind.columns.training import _batch

    ex = example_from_sample(fake_sample(0, shape=(40, 40)), pixel_A=0.15, max_height=3)
    images, targets, weights = _batch([ex], 64, 2, np.random.default_rng(0))
    assert images.shape == (2, 1, 64, 64) and targets.shape == (2, 4, 64, 64)
    assert np.allclose(targets.sum(axis=1), 1.0, atol=2e-3)  # half-precision targets
    assert (weights == 0).sum() == 2 * (64 * 64 - 40 * 40)  # padding weighs nothing, the image everywhere


def test_expected_calibration_error_of_known_cases():
    assert expected_calibration_error(np.full(10, 0.95), np.ones(10)) == pytest.approx(0.05)
    confidence = np.array([0.15] * 4 + [0.85] * 4)
    correct = np.array([0, 0, 0, 1, 1, 1, 1, 0])  # 0.25 right at 0.15, 0.75 right at 0.85
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.1)


def test_examples_come_from_dataset_files_with_their_source(tmp_path):
    from nanofind.datasets.sample import Sample
    from nanofind.datasets.store import write_samples_file

    fakes = [fake_sample(s, shape=(64, 64)) for s in range(2)]
    samples = [Sample(k, f.image, np.zeros((64, 64), np.uint8), np.full((64, 64), -1, np.int16),
                      np.zeros((64, 64), np.uint16), f.columns.astype(np.float32),
                      {"pixel_size_A": 0.15, "dose_e_per_A2": 500.0 * (k + 1)}) for k, f in enumerate(fakes)]
    header = {"format": "nanofind-dataset", "format_version": 2, "seed": 0, "images_per_scene": 1,
              "recipe": "{}", "recipe_source": "test"}
    path = write_samples_file(tmp_path / "d.h5", samples, header)
    examples = read_examples([path], pixel_A=0.15, max_height=3)
    assert len(examples) == 2 and [e.source["index"] for e in examples] == [0, 1]
    assert examples[1].source["dose_e_per_A2"] == 1000.0
    assert np.allclose(examples[0].columns_px, fakes[0].columns[:, :2] / 0.15, atol=1e-4)
    assert len(read_examples([path], limit=1, pixel_A=0.15, max_height=3)) == 1
