import math

import numpy as np
import pytest

from nanofind.simulate.multislice import ExitWaves
from nanofind.simulate.optics import (
    Optics,
    aberration_phase,
    ctf_zeros_inv_A,
    image_intensity,
    scherzer_defocus_A,
    wavelength_A,
)


def test_wavelength_known_values():
    # tabulated relativistic wavelengths: 200 kV 2.508 pm, 300 kV 1.969 pm
    assert wavelength_A(200e3) == pytest.approx(0.02508, abs=2e-5)
    assert wavelength_A(300e3) == pytest.approx(0.01969, abs=2e-5)


@pytest.mark.parametrize("Cs_A", [1.2e7, 5e6, -1.5e5, 3e5])
def test_scherzer_defocus_formula_and_phase_extremum(Cs_A):
    lam = wavelength_A(300e3)
    df = scherzer_defocus_A(Cs_A, 300e3)
    assert abs(df) == pytest.approx(math.sqrt(4 / 3 * abs(Cs_A) * lam), rel=1e-12)
    assert math.copysign(1, df) == math.copysign(1, Cs_A)
    # at Scherzer defocus the phase χ(k) has a single extremum of ∓2π/3
    k = np.linspace(0, 3 * (abs(Cs_A) * lam**3) ** -0.25, 200_001)
    chi = aberration_phase(k, 300e3, df, Cs_A)
    extremum = chi.min() if Cs_A > 0 else chi.max()
    assert extremum == pytest.approx(-math.copysign(2 * math.pi / 3, Cs_A), rel=1e-6)
    # 1.2 mm at 300 kV: 56.1 nm (the textbook "−56 nm Scherzer" with the opposite sign convention)
    if Cs_A == 1.2e7:
        assert df == pytest.approx(561.2, abs=0.5)


def _weak_phase_response(optics: Optics, n=256, sampling=0.08, seed=0):
    rng = np.random.default_rng(seed)
    phi = rng.standard_normal((n, n))
    sigma = 1e-3
    waves = ExitWaves(np.exp(1j * sigma * phi)[None].astype(np.complex64), optics.energy_eV, (sampling, sampling))
    intensity = image_intensity(waves, optics).astype(np.float64)
    # weak phase object through a lens exp(-iχ): FT(I - 1) = 2 sin χ · σ FT(φ) (Kirkland, Advanced
    # Computing in EM, eq. 3.54); image_intensity returns rows = y, so φ is transposed to match
    ratio = np.fft.fft2(intensity - 1) / (sigma * np.fft.fft2(phi.T))
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n, sampling), np.fft.fftfreq(n, sampling), indexing="ij"))
    return k, ratio


@pytest.mark.parametrize("defocus_A,Cs_A", [(400.0, 0.0), (scherzer_defocus_A(1.2e7, 300e3), 1.2e7),
                                            (-150.0, -1.5e5)])
def test_ctf_zeros_fall_where_theory_puts_them(defocus_A, Cs_A):
    optics = Optics(300e3, defocus_A=defocus_A, Cs_A=Cs_A)
    k, ratio = _weak_phase_response(optics)
    k_max = 1.5  # 1/Å: the range HRTEM transfers, well inside abTEM's antialias aperture (4.2 1/Å here)
    theory = 2 * np.sin(aberration_phase(k, 300e3, defocus_A, Cs_A))
    inside = (k > 0) & (k < k_max)
    # the whole transfer function, not just its zeros, follows 2 sin χ
    error = np.abs(ratio[inside].real - theory[inside])
    # rare frequencies where FT(φ) is nearly zero amplify float32 rounding; the bulk is exact
    assert np.percentile(error, 99) < 0.02 and error.max() < 0.15
    zeros = ctf_zeros_inv_A(300e3, defocus_A, Cs_A, k_max)
    assert len(zeros) >= 2
    # along the kx axis, the measured transfer changes sign exactly where a predicted zero lies
    half = k.shape[0] // 2  # positive frequencies only
    axis_k, axis_t = k[1:half, 0], ratio[1:half, 0].real
    keep = axis_k < k_max
    axis_k, axis_t = axis_k[keep], axis_t[keep]
    for k0, k1, t0, t1 in zip(axis_k[:-1], axis_k[1:], axis_t[:-1], axis_t[1:], strict=True):
        predicted = np.count_nonzero((zeros > k0) & (zeros <= k1))
        assert (np.sign(t0) != np.sign(t1)) == (predicted % 2 == 1), (k0, k1, t0, t1, zeros)


def test_focal_spread_damps_high_frequencies():
    sharp = Optics(300e3, defocus_A=200.0)
    spread = Optics(300e3, defocus_A=200.0, focal_spread_A=60.0, focal_points=7)
    k, r0 = _weak_phase_response(sharp)
    _, r1 = _weak_phase_response(spread)
    lam = wavelength_A(300e3)
    high = (k > 0.3) & (k < 0.6)
    envelope = np.exp(-0.5 * (math.pi * lam * 60.0 * k[high] ** 2) ** 2)
    # incoherent Gauss-Hermite focal sum reproduces the temporal envelope of linear imaging
    assert np.allclose(np.abs(r1[high]), np.abs(r0[high]) * envelope, atol=0.03)


def test_optics_rejects_bad_values():
    with pytest.raises(ValueError, match="energy"):
        Optics(energy_eV=0)
    with pytest.raises(ValueError, match="aperture"):
        Optics(aperture_mrad=-1)
