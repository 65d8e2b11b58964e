import numpy as np
import pytest

from nanofind.simulate.detector import Detector, bin_image, mtf, poisson_dose, smooth_displacement, warp, xray_spikes


@pytest.mark.parametrize("dose,pixel", [(150.0, 0.2), (1000.0, 0.5), (4000.0, 1.0)])
def test_mean_poisson_counts_equal_dose_times_pixel_area(dose, pixel):
    rng = np.random.default_rng(1)
    counts = poisson_dose(np.ones((512, 512)), dose, pixel, rng)
    expected = dose * pixel**2
    standard_error = np.sqrt(expected / counts.size)
    assert abs(counts.mean() - expected) < 5 * standard_error
    assert counts.var() == pytest.approx(expected, rel=0.05)  # Poisson: variance = mean


def test_binning_conserves_mean_and_integrates_blocks():
    image = np.arange(16.0).reshape(4, 4)
    assert np.array_equal(bin_image(image, 2), [[2.5, 4.5], [10.5, 12.5]])
    with pytest.raises(ValueError, match="divisible"):
        bin_image(np.zeros((5, 4)), 2)


def test_mtf_values():
    m = mtf((64, 64), half_frequency=0.5, floor=0.0)
    assert m[0, 0] == 1.0
    # at q = 0.5 Nyquist (0.25 cycles/pixel along x) the Lorentzian is one half
    assert m[0, 16] == pytest.approx(0.5)


def test_distortion_moves_image_and_labels_together():
    rng = np.random.default_rng(0)
    d = smooth_displacement((64, 64), 2.0, 20.0, rng)
    assert np.sqrt((d**2).mean()) == pytest.approx(2.0, rel=1e-6)
    label = np.zeros((64, 64), np.uint8)
    label[20:40, 25:45] = 1
    image = label.astype(float)
    wi, wl = warp(image, d, order=1), warp(label, d, order=0)
    assert set(np.unique(wl)) <= {0, 1}
    assert np.corrcoef(wi.ravel(), wl.ravel())[0, 1] > 0.95


def test_xray_spikes_and_full_detector_noise_free_expectation():
    rng = np.random.default_rng(0)
    out, where = xray_spikes(np.ones((100, 100)), 1e4, 50.0, rng)
    assert len(where) > 0 and out.max() > 20
    det = Detector(pixel_size_A=0.5)  # infinite dose: no noise
    flat = det.record(np.ones((64, 64)), 2, rng)
    assert flat.shape == (32, 32) and np.allclose(flat, 1.0)
