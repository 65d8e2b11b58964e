"""Images of projected crystals: the convolution model for HAADF-STEM, and HRTEM through nanofind's simulator.

The convolution model (seed 003's "computationally efficient convolution"): every atomic column is a
2D Gaussian of width ``sigma_A`` (probe and thermal blur together) whose weight is Σ Z^n of its atoms
per Å of thickness (n ≈ 1.7), so the image is the projected column weights convolved with one
Gaussian. Intensities grow linearly with thickness in this model; images are compared after
normalisation, so thickness only matters for HRTEM.

Placement convention for every renderer: the projection's cell origin sits at ``shift_A`` (x, y)
from the top-left corner of the top-left pixel, after the pattern is mirrored (y → −y, when
``mirror``) and then turned by ``rotation_deg`` (counter-clockwise as seen on screen with rows
downwards means clockwise in x, y; the angle is the one from x towards y).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from nanofind.library.zones import Projection


def placed_columns(projection: Projection, shape: tuple[int, int], pixel_size_A: float, *,
                   rotation_deg: float = 0.0, shift_A=(0.0, 0.0), mirror: bool = False,
                   margin_A: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Columns of the periodic projection that fall inside the field (plus ``margin_A``).

    Returns
    -------
    xy_px : ndarray (n, 2)
        Positions (x, y) in px from the top-left corner of the top-left pixel.
    index : ndarray (n,)
        Index of each column in ``projection.positions_A``.
    """
    h, w = shape
    cell = projection.cell_A.astype(np.float64).copy()
    base = projection.positions_A.astype(np.float64).copy()
    if mirror:
        cell[:, 1] *= -1
        base[:, 1] *= -1
    turn = math.radians(rotation_deg)
    rot = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    cell, base = cell @ rot.T, base @ rot.T
    shift = np.asarray(shift_A, dtype=np.float64)
    # lattice translations that can reach the field: solve for the cell indices of its corners
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64) * pixel_size_A - shift
    span = np.linalg.solve(cell.T, corners.T)
    pad = 1 + int(math.ceil(margin_A / max(1e-9, min(np.linalg.norm(cell, axis=1)))))
    lo = np.floor(span.min(axis=1)).astype(int) - pad
    hi = np.ceil(span.max(axis=1)).astype(int) + pad
    i, j = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    origins = i.reshape(-1, 1) * cell[0] + j.reshape(-1, 1) * cell[1] + shift
    xy = (origins[:, None, :] + base[None, :, :]).reshape(-1, 2)
    index = np.tile(np.arange(len(base)), len(origins))
    inside = ((xy[:, 0] >= -margin_A) & (xy[:, 0] <= w * pixel_size_A + margin_A)
              & (xy[:, 1] >= -margin_A) & (xy[:, 1] <= h * pixel_size_A + margin_A))
    return xy[inside] / pixel_size_A, index[inside]


def splat(shape: tuple[int, int], xy_px: np.ndarray, weights: np.ndarray, sigma_px: float) -> np.ndarray:
    """Weighted points spread bilinearly over pixels, then convolved with a Gaussian of ``sigma_px``.

    Exact for the Gaussian's centre to within the bilinear spread (a blur of at most half a pixel).
    """
    h, w = shape
    image = np.zeros((h, w), dtype=np.float64)
    if len(xy_px):
        fx, fy = xy_px[:, 0] - 0.5, xy_px[:, 1] - 0.5  # pixel centres are at +0.5
        x0, y0 = np.floor(fx).astype(np.intp), np.floor(fy).astype(np.intp)
        ax, ay = fx - x0, fy - y0
        for dy, dx, share in ((0, 0, (1 - ay) * (1 - ax)), (0, 1, (1 - ay) * ax), (1, 0, ay * (1 - ax)),
                              (1, 1, ay * ax)):
            rows, cols = y0 + dy, x0 + dx
            ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
            np.add.at(image, (rows[ok], cols[ok]), (weights * share)[ok])
    return ndi.gaussian_filter(image, sigma_px, mode="constant")


def render_haadf(projection: Projection, shape: tuple[int, int], pixel_size_A: float, *, sigma_A: float = 0.45,
                 rotation_deg: float = 0.0, shift_A=(0.0, 0.0), mirror: bool = False) -> np.ndarray:
    """A HAADF-STEM image of the projection by the convolution model, (rows, cols) float64.

    Parameters
    ----------
    projection : Projection
        Columns and cell of the crystal along its zone.
    shape : (int, int)
        Image shape (rows = y, cols = x).
    pixel_size_A : float
        Pixel size, Å.
    sigma_A : float
        Standard deviation of each column's Gaussian, Å (probe and thermal blur).
    rotation_deg, shift_A, mirror
        Placement (module docstring).

    Returns
    -------
    ndarray
        Σ Z^n per Å of thickness, blurred; multiply by the thickness in Å for a given specimen.
    """
    reach_A = 4 * sigma_A
    xy, index = placed_columns(projection, shape, pixel_size_A, rotation_deg=rotation_deg, shift_A=shift_A,
                               mirror=mirror, margin_A=reach_A)
    # columns outside the field still shine into it: render on a padded canvas and crop
    pad = int(math.ceil(reach_A / pixel_size_A)) + 1
    canvas = splat((shape[0] + 2 * pad, shape[1] + 2 * pad), xy + pad, projection.z_weight_per_A[index],
                   sigma_A / pixel_size_A)
    # the Gaussian's integral is spread over pixels: scale so that a column's peak is its weight
    return canvas[pad:pad + shape[0], pad:pad + shape[1]] * (2 * math.pi * (sigma_A / pixel_size_A) ** 2)


def render_hrtem(atoms, uvw: tuple[int, int, int], shape: tuple[int, int], pixel_size_A: float, settings) -> np.ndarray:
    """HRTEM images of the crystal along ``uvw``, one per defocus of ``settings``, (defoci, rows, cols).

    A square slab (``settings.thickness_A`` thick) a few ångströms wider than the field on every side
    is simulated with nanofind's multislice or phase-object code (static lattice, ``settings.sampling_A``),
    imaged through ``settings``' optics at each defocus, and the middle ``shape`` cut out at
    ``pixel_size_A``. The projection's cell origin lies at the field's centre. Intensities are
    relative to vacuum (1).
    """
    size_A = max(shape) * pixel_size_A + 2 * 6.0  # a 6 Å margin keeps the slab's cut edges out
    waves, sampling = slab_exit_waves(atoms, uvw, size_A, settings.thickness_A, energy_eV=settings.energy_eV,
                                      mode=settings.mode, sampling_A=settings.sampling_A)
    h, w = shape
    rows = size_A / 2 + (np.arange(h) + 0.5 - h / 2) * pixel_size_A
    cols = size_A / 2 + (np.arange(w) + 0.5 - w / 2) * pixel_size_A
    rr, cc = np.meshgrid(rows / sampling - 0.5, cols / sampling - 0.5, indexing="ij")
    out = []
    for defocus in settings.defocus_A:
        smoothed = imaged(waves, sampling, pixel_size_A, energy_eV=settings.energy_eV, defocus_A=float(defocus),
                          Cs_A=settings.Cs_A, focal_spread_A=settings.focal_spread_A)
        out.append(ndi.map_coordinates(smoothed, [rr, cc], order=1, mode="wrap"))
    return np.asarray(out)


def slab_exit_waves(atoms, uvw: tuple[int, int, int], size_A: float, thickness_A: float, *, energy_eV: float,
                    mode: str, sampling_A: float, tilt_mrad=(0.0, 0.0), seed: int = 0):
    """Exit waves of a ``size_A``-wide, ``thickness_A``-thick slab of the crystal along ``uvw``.

    Static lattice, 2 Å slices (``mode``: multislice or phase_object), the tilt as a beam tilt.
    Returns the waves and their sampling, Å (``size_A`` over an even number of points near
    ``sampling_A``).
    """
    from nanofind.library.zones import oriented_slab
    from nanofind.simulate.multislice import MultisliceSettings, simulate_exit_waves

    slab = oriented_slab(atoms, uvw, size_A, thickness_A)
    gpts = int(math.ceil(size_A / sampling_A / 2)) * 2
    waves = simulate_exit_waves(slab, energy_eV, (gpts, gpts),
                                MultisliceSettings(mode=mode, slice_thickness_A=2.0, tilt_mrad=tuple(tilt_mrad)),
                                seed=seed)
    return waves, size_A / gpts


def imaged(waves, sampling_A: float, pixel_size_A: float, *, energy_eV: float, defocus_A: float, Cs_A: float,
           focal_spread_A: float) -> np.ndarray:
    """The HRTEM image of exit waves at one defocus (positive underfocus, Å), rows = y, at ``sampling_A``.

    Smoothed by 0.4 of the coarser ``pixel_size_A`` so that resampling to it lets no alias in.
    """
    from nanofind.simulate.optics import Optics, image_intensity

    optics = Optics(energy_eV=energy_eV, defocus_A=defocus_A, Cs_A=Cs_A, focal_spread_A=focal_spread_A,
                    focal_points=1)
    return ndi.gaussian_filter(image_intensity(waves, optics), 0.4 * pixel_size_A / sampling_A)
