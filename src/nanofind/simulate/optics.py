"""Objective-lens optics of a plane-wave HRTEM: aberrations, aperture and partial coherence.

Conventions (the same as abTEM's):

- ``defocus_A = -C10``: a positive defocus is underfocus (the lens is weakened), which with a
  positive Cs gives the classic dark-atom Scherzer contrast.
- The aberration phase is χ(α, φ) = 2π/λ · Σ C_nm α^(n+1)/(n+1) cos(m(φ − φ_nm)), α in rad.
  For round aberrations only, χ(k) = −π λ Δf k² + (π/2) Cs λ³ k⁴ + (π/3) C5 λ⁵ k⁶ with k in 1/Å.
- Lengths (defocus, Cs, C5, astigmatism, coma, focal spread) are in Å; angles in mrad or degrees
  as named. 1 mm = 1e7 Å and 1 µm = 1e4 Å.

Partial coherence: temporal incoherence (focal spread) uses abTEM's quasi-coherent envelope, or,
with ``focal_points > 1``, an incoherent sum over Gauss–Hermite defoci, which also holds beyond the
linear-imaging approximation. Spatial incoherence (angular spread) uses abTEM's quasi-coherent
envelope on the wave.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

#: Electron rest energy, eV.
ELECTRON_REST_ENERGY_EV = 510_998.95
#: h·c in eV·Å.
PLANCK_C_EV_A = 12_398.419843


def wavelength_A(energy_eV: float) -> float:
    """Relativistic electron wavelength λ in Å for an accelerating voltage given as ``energy_eV`` in eV."""
    e = float(energy_eV)
    if not e > 0:
        raise ValueError(f"energy_eV must be > 0, got {energy_eV}")
    return PLANCK_C_EV_A / math.sqrt(e * (2 * ELECTRON_REST_ENERGY_EV + e))


def scherzer_defocus_A(Cs_A: float, energy_eV: float) -> float:
    """Scherzer defocus Δf = sign(Cs)·√(4/3 |Cs| λ), Å, in the ``defocus = −C10`` convention.

    At this defocus the round-aberration phase χ(k) reaches its extremum of ∓2π/3, giving the
    widest band of uniform phase-contrast transfer. Positive Cs gives an underfocus (positive
    value); negative Cs (negative Cs imaging) an overfocus.
    """
    lam = wavelength_A(energy_eV)
    return math.copysign(math.sqrt(4.0 / 3.0 * abs(Cs_A) * lam), Cs_A) if Cs_A != 0 else 0.0


def aberration_phase(k_inv_A: np.ndarray, energy_eV: float, defocus_A: float = 0.0, Cs_A: float = 0.0,
                     C5_A: float = 0.0) -> np.ndarray:
    """Round-aberration phase χ(k), rad, at spatial frequencies ``k_inv_A`` (1/Å)."""
    lam = wavelength_A(energy_eV)
    k2 = np.asarray(k_inv_A, float) ** 2
    return (-np.pi * lam * defocus_A * k2 + 0.5 * np.pi * Cs_A * lam**3 * k2**2
            + np.pi / 3.0 * C5_A * lam**5 * k2**3)


def ctf_zeros_inv_A(energy_eV: float, defocus_A: float, Cs_A: float, k_max_inv_A: float) -> np.ndarray:
    """Spatial frequencies (1/Å, ascending, k > 0) where sin χ(k) = 0 for defocus and Cs only."""
    lam = wavelength_A(energy_eV)
    a = 0.5 * np.pi * Cs_A * lam**3   # χ = a u² + b u with u = k²
    b = -np.pi * lam * defocus_A
    u_max = k_max_inv_A**2
    chi_end = a * u_max**2 + b * u_max
    lo = min(0.0, chi_end, (-b * b / (4 * a)) if a != 0 else 0.0)
    hi = max(0.0, chi_end)
    zeros = []
    for n in range(int(np.floor(lo / np.pi)), int(np.ceil(hi / np.pi)) + 1):
        c = -n * np.pi
        if a == 0:
            roots = [-c / b] if b != 0 else []
        else:
            disc = b * b - 4 * a * c
            roots = [] if disc < 0 else [(-b + s * math.sqrt(disc)) / (2 * a) for s in (-1, 1)]
        zeros += [math.sqrt(u) for u in roots if 0 < u <= u_max]
    return np.unique(np.round(np.array(zeros), 12))


@dataclass(frozen=True)
class Optics:
    """Objective-lens settings for one image.

    Parameters
    ----------
    energy_eV : float
        Accelerating voltage, eV (200e3 or 300e3 typically).
    defocus_A : float
        Defocus, Å; ``defocus = −C10``, positive is underfocus.
    Cs_A, C5_A : float
        Third- and fifth-order spherical aberration, Å (1 mm = 1e7 Å).
    astigmatism_A, astigmatism_angle_deg : float
        Two-fold astigmatism C12 and its azimuth.
    trefoil_A, trefoil_angle_deg : float
        Three-fold astigmatism C23 and its azimuth.
    coma_A, coma_angle_deg : float
        Axial coma C21 and its azimuth.
    aperture_mrad : float or None
        Objective aperture semi-angle, mrad; None for no aperture.
    focal_spread_A : float
        Standard deviation Δ of the Gaussian defocus spread (chromatic), Å.
    angular_spread_mrad : float
        Standard deviation of the illumination semi-angle spread (beam convergence), mrad.
    focal_points : int
        1: abTEM's quasi-coherent temporal envelope (cheap, linear-imaging approximation);
        more: incoherent sum over that many Gauss–Hermite defoci (exact for temporal incoherence).
    """

    energy_eV: float = 300e3
    defocus_A: float = 0.0
    Cs_A: float = 0.0
    C5_A: float = 0.0
    astigmatism_A: float = 0.0
    astigmatism_angle_deg: float = 0.0
    trefoil_A: float = 0.0
    trefoil_angle_deg: float = 0.0
    coma_A: float = 0.0
    coma_angle_deg: float = 0.0
    aperture_mrad: float | None = None
    focal_spread_A: float = 0.0
    angular_spread_mrad: float = 0.0
    focal_points: int = 5

    def __post_init__(self):
        if not self.energy_eV > 0:
            raise ValueError(f"energy_eV must be > 0, got {self.energy_eV}")
        if self.aperture_mrad is not None and not self.aperture_mrad > 0:
            raise ValueError(f"aperture_mrad must be > 0 or None, got {self.aperture_mrad}")
        if self.focal_spread_A < 0 or self.angular_spread_mrad < 0:
            raise ValueError("focal_spread_A and angular_spread_mrad must be >= 0")
        if self.focal_points < 1:
            raise ValueError(f"focal_points must be >= 1, got {self.focal_points}")

    @property
    def wavelength_A(self) -> float:
        """Electron wavelength, Å."""
        return wavelength_A(self.energy_eV)

    def to_dict(self) -> dict:
        """Plain JSON-able record of every setting."""
        return asdict(self)

    def aberration_coefficients(self, defocus_A: float | None = None) -> dict[str, float]:
        """The abTEM polar coefficients (Å and rad) for these optics, optionally with another defocus."""
        rad = math.radians
        return {"C10": -(self.defocus_A if defocus_A is None else defocus_A), "C30": self.Cs_A,
                "C50": self.C5_A, "C12": self.astigmatism_A, "phi12": rad(self.astigmatism_angle_deg),
                "C23": self.trefoil_A, "phi23": rad(self.trefoil_angle_deg), "C21": self.coma_A,
                "phi21": rad(self.coma_angle_deg)}

    def focal_series(self) -> list[tuple[float, float]]:
        """(defocus Å, weight) pairs whose weighted sum of intensities models the focal spread."""
        if self.focal_spread_A == 0 or self.focal_points == 1:  # the envelope handles it
            return [(self.defocus_A, 1.0)]
        x, w = np.polynomial.hermite_e.hermegauss(self.focal_points)
        w = w / w.sum()
        return [(self.defocus_A + self.focal_spread_A * float(xi), float(wi)) for xi, wi in zip(x, w, strict=True)]

    def ctf(self, defocus_A: float | None = None, with_focal_envelope: bool = False):
        """The abTEM ``CTF`` with these aberrations, aperture and angular spread (focal spread excluded)."""
        import abtem

        return abtem.CTF(semiangle_cutoff=np.inf if self.aperture_mrad is None else self.aperture_mrad,
                         soft=True, angular_spread=self.angular_spread_mrad, energy=self.energy_eV,
                         focal_spread=self.focal_spread_A if with_focal_envelope else 0.0,
                         aberration_coefficients=self.aberration_coefficients(defocus_A))


def image_intensity(exit_waves, optics: Optics) -> np.ndarray:
    """Image intensity, (ny, nx) float32 with rows along y, of exit waves seen through ``optics``.

    Parameters
    ----------
    exit_waves : nanofind.simulate.multislice.ExitWaves
        Exit waves of one specimen; the frozen-phonon and tilt ensemble is averaged incoherently.
    optics : Optics
        Objective lens; its ``energy_eV`` must equal the waves' energy.

    Returns
    -------
    numpy.ndarray
        Intensity normalised so that vacuum is 1.
    """
    if abs(optics.energy_eV - exit_waves.energy_eV) > 1e-6 * exit_waves.energy_eV:
        raise ValueError(f"optics energy {optics.energy_eV} eV differs from the exit waves' "
                         f"{exit_waves.energy_eV} eV")
    from nanofind.simulate.abtem_config import abtem_config

    total = None
    envelope = optics.focal_points == 1
    with abtem_config():  # nanofind's abTEM settings for these calls only
        waves = exit_waves.as_abtem()
        for defocus, weight in optics.focal_series():
            intensity = waves.apply_ctf(optics.ctf(defocus, with_focal_envelope=envelope)).intensity().array
            intensity = np.asarray(intensity, np.float64).reshape((-1,) + intensity.shape[-2:]).mean(axis=0)
            total = weight * intensity if total is None else total + weight * intensity
    # abTEM arrays are indexed [x, y]; nanofind images are [row = y, column = x]
    return np.ascontiguousarray(total.T, dtype=np.float32)
