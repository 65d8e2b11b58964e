"""Test queries for structure matching: HAADF images rendered atom by atom from a real slab.

Independent of the library's convolution renderer (which works on projected columns): the crystal is
cut into a slab of a given thickness, tilted off its zone, every atom is drawn as its own Gaussian
of weight Z^n at its projected position, the scan distorts the rows, and the counts are Poisson
at a given dose. This is what the retrieval benchmark and the tests query with.

Dose model: the expected counts of a pixel are ``dose_e_per_A2 × pixel² × (BACKGROUND_FRACTION +
PEAK_FRACTION × I / I_peak)``, with I the drawn intensity and I_peak its value on the brightest
column: the annular detector collects 5 % of the beam on the heaviest columns and 0.5 % between them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from nanofind.library.zones import oriented_slab

PEAK_FRACTION = 0.05
BACKGROUND_FRACTION = 0.005


@dataclass(frozen=True)
class QueryConditions:
    """How one query image is made (angles in degrees, lengths in Å, dose in e/Å²)."""

    pixel_size_A: float = 0.1
    shape: tuple[int, int] = (512, 512)
    rotation_deg: float = 0.0
    shift_A: tuple[float, float] = (0.0, 0.0)
    mirror: bool = False
    tilt_deg: float = 0.0
    tilt_azimuth_deg: float = 0.0
    thickness_A: float = 40.0
    sigma_A: float = 0.5
    dose_e_per_A2: float | None = 1e5
    scan_shear: float = 0.0
    scan_jitter_A: float = 0.0
    z_exponent: float = 1.7

    def to_dict(self) -> dict:
        """JSON-able record."""
        return asdict(self)


def random_conditions(rng, *, dose_e_per_A2: float | None, pixel_size_A: float = 0.1,
                      shape: tuple[int, int] = (512, 512), max_tilt_deg: float = 2.0,
                      thickness_range_A: tuple[float, float] = (20.0, 80.0)) -> QueryConditions:
    """Conditions drawn as the retrieval benchmark draws them.

    Any rotation, shift and mirror, tilt up to ``max_tilt_deg``, thickness in ``thickness_range_A``,
    probe blur 0.4–0.6 Å, scan shear up to 1 % and line jitter up to 0.05 Å.
    """
    rng = np.random.default_rng(rng)
    return QueryConditions(pixel_size_A=pixel_size_A, shape=tuple(shape), rotation_deg=float(rng.uniform(0, 360)),
                           shift_A=tuple(float(v) for v in rng.uniform(0, 20, 2)), mirror=bool(rng.integers(2)),
                           tilt_deg=float(rng.uniform(0, max_tilt_deg)),
                           tilt_azimuth_deg=float(rng.uniform(0, 360)),
                           thickness_A=float(rng.uniform(*thickness_range_A)), sigma_A=float(rng.uniform(0.4, 0.6)),
                           dose_e_per_A2=dose_e_per_A2, scan_shear=float(rng.uniform(-0.01, 0.01)),
                           scan_jitter_A=float(rng.uniform(0, 0.05)))


def render_query(atoms, uvw: tuple[int, int, int], conditions: QueryConditions, rng=None) -> np.ndarray:
    """A HAADF-STEM image of the crystal ``atoms`` seen along ``uvw`` under ``conditions``, (rows, cols).

    Counts when ``conditions.dose_e_per_A2`` is set, else the noiseless intensity scaled to the
    brightest column.
    """
    from nanofind.columns.synthetic import render_columns

    rng = np.random.default_rng(rng)
    c = conditions
    h, w = c.shape
    field_A = math.hypot(h, w) * c.pixel_size_A
    slab = oriented_slab(atoms, uvw, field_A + 8.0, c.thickness_A)
    xyz = slab.positions - np.array([(field_A + 8.0) / 2, (field_A + 8.0) / 2, 0.0])
    # tilt about an in-plane axis at the azimuth, then project along z
    axis = np.array([math.cos(math.radians(c.tilt_azimuth_deg)), math.sin(math.radians(c.tilt_azimuth_deg)), 0.0])
    xyz = _rotated(xyz - np.array([0, 0, xyz[:, 2].mean()]), axis, math.radians(c.tilt_deg))
    xy = xyz[:, :2].copy()
    if c.mirror:
        xy[:, 1] *= -1
    turn = math.radians(c.rotation_deg)
    xy = xy @ np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]]).T
    xy += np.array([w, h]) * c.pixel_size_A / 2 + np.asarray(c.shift_A)
    # the scan: a slow shear of x with y, and each line displaced at random along x
    rows = np.clip((xy[:, 1] / c.pixel_size_A).astype(int), 0, h - 1)
    jitter = rng.normal(0, c.scan_jitter_A, h) if c.scan_jitter_A > 0 else np.zeros(h)
    xy[:, 0] += c.scan_shear * (xy[:, 1] - h * c.pixel_size_A / 2) + jitter[rows]
    reach = 4 * c.sigma_A
    inside = ((xy[:, 0] > -reach) & (xy[:, 0] < w * c.pixel_size_A + reach)
              & (xy[:, 1] > -reach) & (xy[:, 1] < h * c.pixel_size_A + reach))
    weights = slab.numbers[inside].astype(np.float64) ** c.z_exponent
    image = render_columns((h, w), xy[inside] / c.pixel_size_A, sigma_px=c.sigma_A / c.pixel_size_A,
                           amplitude=weights)
    peak = max(float(np.percentile(image, 99.9)), 1e-12)
    relative = image / peak
    if c.dose_e_per_A2 is None:
        return relative
    expected = c.dose_e_per_A2 * c.pixel_size_A ** 2 * (BACKGROUND_FRACTION + PEAK_FRACTION * relative)
    return rng.poisson(expected).astype(np.float64)


def _rotated(points: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Points turned by ``angle`` (rad) about the unit ``axis`` through the origin (Rodrigues)."""
    k = axis / np.linalg.norm(axis)
    cos, sin = math.cos(angle), math.sin(angle)
    return points * cos + np.cross(k, points) * sin + np.outer(points @ k, k) * (1 - cos)


def render_hrtem_query(atoms, uvw: tuple[int, int, int], conditions: QueryConditions, *, defocus_A: float,
                       Cs_A: float = -1.5e5, energy_eV: float = 300e3, focal_spread_A: float = 20.0,
                       rng=None) -> np.ndarray:
    """An HRTEM image of the crystal along ``uvw`` by full multislice, under ``conditions``, (rows, cols).

    The slab (``conditions.thickness_A``) is simulated by multislice (2 Å slices) with the tilt as a
    beam tilt, imaged at ``defocus_A`` (positive underfocus, Å), then turned, shifted and mirrored as
    ``conditions`` say, sampled at their pixel size, and given Poisson counts at their dose (vacuum
    intensity 1 per e/Å²). ``sigma_A`` and the scan settings are not used (no scan in TEM).
    """
    from scipy import ndimage as ndi

    from nanofind.library.render import imaged, slab_exit_waves

    rng = np.random.default_rng(rng)
    c = conditions
    h, w = c.shape
    field_A = math.hypot(h, w) * c.pixel_size_A + 2 * math.hypot(*c.shift_A) + 12.0
    azimuth = math.radians(c.tilt_azimuth_deg)
    tilt_mrad = (1e3 * math.radians(c.tilt_deg) * math.cos(azimuth), 1e3 * math.radians(c.tilt_deg) * math.sin(azimuth))
    waves, step = slab_exit_waves(atoms, uvw, field_A, c.thickness_A, energy_eV=energy_eV, mode="multislice",
                                  sampling_A=0.05, tilt_mrad=tilt_mrad, seed=int(rng.integers(2**31)))
    intensity = imaged(waves, step, c.pixel_size_A, energy_eV=energy_eV, defocus_A=defocus_A, Cs_A=Cs_A,
                       focal_spread_A=focal_spread_A)
    # output pixel (row, col) -> specimen position: inverse of mirror, then turn, then shift
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    x = (xx + 0.5 - w / 2) * c.pixel_size_A - c.shift_A[0]
    y = (yy + 0.5 - h / 2) * c.pixel_size_A - c.shift_A[1]
    turn = math.radians(c.rotation_deg)
    u = math.cos(turn) * x + math.sin(turn) * y
    v = -math.sin(turn) * x + math.cos(turn) * y
    if c.mirror:
        v = -v
    rows = (field_A / 2 + v) / step - 0.5
    cols = (field_A / 2 + u) / step - 0.5
    image = ndi.map_coordinates(intensity, [rows, cols], order=1, mode="wrap")
    if c.dose_e_per_A2 is None:
        return image
    return rng.poisson(np.maximum(image, 0) * c.dose_e_per_A2 * c.pixel_size_A ** 2).astype(np.float64)
