"""Scale and lattice-fringe estimates on synthetic fields whose period and particle size are known."""

import json

import numpy as np
import pytest
from scipy import ndimage

from nanofind.errors import NanofindInputError
from nanofind.segment.scale import (
    FringeEvidence,
    ParticleScale,
    lattice_fringes,
    particle_scale,
    resample_factor,
)


def grating(period_px, angle_deg, shape=(512, 512), contrast=0.1, dose=100.0, seed=0):
    """Cosine fringes of the given period and direction, with Poisson noise (counts per pixel)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    angle = np.deg2rad(angle_deg)
    phase = 2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period_px
    return rng.poisson(dose * (1 + contrast * np.cos(phase))).astype(float)


def atom_lattice(spacing_px, angle_deg, shape=(512, 512), dose=60.0, seed=0):
    """Hexagonal lattice of Gaussian 'atom columns' (nearest-neighbour distance ``spacing_px``), noisy."""
    rng = np.random.default_rng(seed)
    angle = np.deg2rad(angle_deg)
    a1 = spacing_px * np.array([np.cos(angle), np.sin(angle)])
    a2 = spacing_px * np.array([np.cos(angle + np.pi / 3), np.sin(angle + np.pi / 3)])
    reach = int(2 * max(shape) / spacing_px) + 2
    i, j = np.mgrid[-reach:reach, -reach:reach]
    sites = i.ravel()[:, None] * a1 + j.ravel()[:, None] * a2 + np.array(shape[::-1]) / 2
    inside = (sites[:, 0] > -5) & (sites[:, 0] < shape[1] + 5) & (sites[:, 1] > -5) & (sites[:, 1] < shape[0] + 5)
    points = np.zeros(shape)
    cols, rows = np.rint(sites[inside]).astype(int).T
    keep = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    points[rows[keep], cols[keep]] = 1.0
    columns = ndimage.gaussian_filter(points, 0.2 * spacing_px)
    image = 1.0 - 0.5 * columns / columns.max()
    return rng.poisson(dose * image).astype(float)


def disc_field(diameter_px, count, shape=(512, 512), contrast=0.3, dose=100.0, seed=0, background=None,
               texture=None):
    """Dark discs of one diameter on a brighter film, Poisson noise (counts per pixel).

    Discs sit in randomly chosen cells of a square grid, each at a random place in its cell with at
    least 1 px between neighbours. ``texture`` (an array of the image's shape) multiplies the discs'
    transmission.
    """
    rng = np.random.default_rng(seed)
    cells_per_side = int(np.sqrt(1.6 * count)) + 1
    pitch = min(shape) / cells_per_side
    assert pitch >= diameter_px + 1, "too many discs for the field"
    cells = rng.choice(cells_per_side**2, size=count, replace=False)
    room = pitch - diameter_px - 1
    centres = (np.column_stack(divmod(cells, cells_per_side)) + 0.5) * pitch + rng.uniform(-room / 2, room / 2,
                                                                                           (count, 2))
    mask = np.zeros(shape, bool)
    radius = diameter_px / 2
    for cy, cx in centres:
        rows = slice(max(int(cy - radius) - 1, 0), min(int(cy + radius) + 2, shape[0]))
        cols = slice(max(int(cx - radius) - 1, 0), min(int(cx + radius) + 2, shape[1]))
        yy, xx = np.mgrid[rows, cols]
        mask[rows, cols] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    film = np.ones(shape) if background is None else background
    particles = 1 - contrast * mask
    if texture is not None:
        particles = np.where(mask, particles * texture, particles)
    return rng.poisson(dose * film * particles).astype(float)


# ---------------------------------------------------------------- lattice fringes


@pytest.mark.parametrize("period_px", [2.5, 4.0, 7.5, 15.0, 25.0])
@pytest.mark.parametrize("angle_deg", [0.0, 33.0, 90.0, 128.0])
def test_grating_period_within_3_percent(period_px, angle_deg):
    found = lattice_fringes(grating(period_px, angle_deg))
    assert found.present
    assert found.period_px == pytest.approx(period_px, rel=0.03)


@pytest.mark.parametrize(("spacing_px", "angle_deg"), [(4.0, 10.0), (6.5, 47.0), (9.0, 75.0)])
def test_atom_lattice_period_is_its_plane_spacing(spacing_px, angle_deg):
    # The strongest planes of a hexagonal lattice are {10}, spaced √3/2 × the nearest-neighbour distance.
    found = lattice_fringes(atom_lattice(spacing_px, angle_deg))
    assert found.present
    assert found.period_px == pytest.approx(spacing_px * np.sqrt(3) / 2, rel=0.03)


def test_period_in_angstrom_follows_the_pixel_size():
    found = lattice_fringes(grating(5.0, 20.0), pixel_size_A=0.4)
    assert found.period_A == pytest.approx(0.4 * found.period_px)
    assert found.period_A == pytest.approx(2.0, rel=0.03)


def test_lattice_in_one_particle_on_amorphous_film():
    # A crystalline disc (radius 40 px, fringes of period 5 px) in a 1024² field of correlated
    # noise: a small fraction of one tile, found in that tile's spectrum.
    rng = np.random.default_rng(3)
    shape = (1024, 1024)
    film = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    particle = (yy - 600) ** 2 + (xx - 300) ** 2 <= 40**2
    fringes = np.cos(2 * np.pi * (0.8 * xx + 0.6 * yy) / 5.0)
    image = film + particle * (0.2 * fringes - 0.3)
    found = lattice_fringes(image)
    assert found.present
    assert found.period_px == pytest.approx(5.0, rel=0.03)
    assert 0 < found.tile_fraction < 0.25


def test_particles_filled_with_lattice_show_fringes_blobs_alone_do_not():
    yy, xx = np.mgrid[0:512, 0:512]
    fringes = 1 + 0.15 * np.cos(2 * np.pi * (xx - 0.5 * yy) / 4.0)
    assert not lattice_fringes(disc_field(60, 10, seed=4)).present
    found = lattice_fringes(disc_field(60, 10, seed=4, texture=fringes))
    assert found.present
    assert found.period_px == pytest.approx(4.0 / np.sqrt(1.25), rel=0.03)


@pytest.mark.parametrize("side", [96, 256, 512, 1024])
def test_noise_and_blank_fields_have_no_fringes(side):
    rng = np.random.default_rng(side)
    for image in (rng.normal(size=(side, side)), ndimage.gaussian_filter(rng.normal(size=(side, side)), 1.5),
                  rng.poisson(30.0, (side, side)).astype(float)):
        found = lattice_fringes(image)
        assert not found.present
        assert found.strength < 0.9 * found.threshold
    blank = lattice_fringes(np.full((side, side), 7.0))
    assert not blank.present and blank.strength == 0.0


def test_fringe_period_unchanged_by_quarter_turns():
    image = grating(6.3, 21.0)
    periods = [lattice_fringes(np.rot90(image, turns)).period_px for turns in range(4)]
    assert np.ptp(periods) < 0.01 * periods[0]


def test_fringe_evidence_to_dict_is_json():
    record = lattice_fringes(grating(4.0, 0.0), pixel_size_A=0.5).to_dict()
    assert json.loads(json.dumps(record))["present"] is True
    assert set(record) >= {"present", "period_px", "strength", "period_A"}
    assert isinstance(lattice_fringes(grating(4.0, 0.0)), FringeEvidence)


@pytest.mark.parametrize("bad", [np.zeros((4, 64, 64)), np.zeros(100), np.full((64, 64), np.nan), np.zeros((4, 4))])
def test_bad_images_are_refused(bad):
    with pytest.raises(NanofindInputError):
        lattice_fringes(bad)
    with pytest.raises(NanofindInputError):
        particle_scale(bad)


def test_bad_pixel_size_is_refused():
    with pytest.raises(NanofindInputError, match="pixel_size_A"):
        lattice_fringes(np.ones((64, 64)), pixel_size_A=0.0)


# ---------------------------------------------------------------- particle size


@pytest.mark.parametrize(("diameter_px", "count", "side"), [(6, 400, 512), (20, 60, 512), (60, 12, 512),
                                                            (150, 6, 1024)])
def test_disc_diameter_within_20_percent(diameter_px, count, side):
    found = particle_scale(disc_field(diameter_px, count, shape=(side, side), seed=diameter_px))
    assert found.polarity == "dark"
    assert found.diameter_px == pytest.approx(diameter_px, rel=0.2)
    assert found.n_blobs >= 2


def test_noisy_low_contrast_particles():
    # Contrast 3 counts on 10 counts per pixel: per-pixel signal-to-noise ratio about 1.
    found = particle_scale(disc_field(20, 60, dose=10.0, seed=5))
    assert found.diameter_px == pytest.approx(20, rel=0.2)


def test_uneven_background():
    yy, xx = np.mgrid[0:512, 0:512]
    film = 1 + 0.5 * np.sin(np.pi * xx / 512) * np.cos(yy / 400) + 0.3 * yy / 512
    found = particle_scale(disc_field(30, 30, background=film, seed=6))
    assert found.diameter_px == pytest.approx(30, rel=0.2)


def test_dense_layer_of_small_particles():
    # Random sequential packing of 6 px discs (about 40 % coverage, 0.5 px gaps): the scale-space
    # response of crowded discs peaks at a smaller scale, so allow 25 %.
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:512, 0:512]
    centres, grid = [], {}
    for cy, cx in rng.uniform(0, 512, (40000, 2)):
        cell = (int(cy // 7), int(cx // 7))
        near = [grid.get((cell[0] + dy, cell[1] + dx), []) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        if all(np.hypot(cy - y, cx - x) >= 6.5 for found in near for y, x in found):
            centres.append((cy, cx))
            grid.setdefault(cell, []).append((cy, cx))
    mask = np.zeros((512, 512), bool)
    for cy, cx in centres:
        y0, x0 = int(max(cy - 4, 0)), int(max(cx - 4, 0))
        window = (slice(y0, int(cy + 5)), slice(x0, int(cx + 5)))
        mask[window] |= (yy[window] - cy) ** 2 + (xx[window] - cx) ** 2 <= 9
    assert mask.mean() > 0.3
    found = particle_scale(rng.poisson(100 * (1 - 0.3 * mask)).astype(float))
    assert found.polarity == "dark"
    assert found.diameter_px == pytest.approx(6, rel=0.25)


def test_bright_particles_are_recognised():
    image = disc_field(20, 60, seed=8)
    found = particle_scale(image.max() + image.min() - image)
    assert found.polarity == "bright"
    assert found.diameter_px == pytest.approx(20, rel=0.2)
    assert particle_scale(image, polarity="dark").diameter_px == pytest.approx(20, rel=0.2)


def test_large_image_is_measured_on_a_reduced_copy_and_a_full_resolution_crop():
    small = particle_scale(disc_field(6, 3000, shape=(2048, 2048), seed=9))
    large = particle_scale(disc_field(60, 250, shape=(2048, 2048), seed=10))
    assert small.diameter_px == pytest.approx(6, rel=0.2)
    assert large.diameter_px == pytest.approx(60, rel=0.2)


@pytest.mark.parametrize("side", [128, 512])
def test_blank_and_noise_give_no_diameter(side):
    rng = np.random.default_rng(side)
    for image in (np.full((side, side), 100.0), rng.poisson(100.0, (side, side)).astype(float),
                  rng.normal(size=(side, side)), ndimage.gaussian_filter(rng.normal(size=(side, side)), 1.5)):
        found = particle_scale(image)
        assert found.diameter_px is None
        assert found.confidence == 0.0 and found.n_blobs == 0


def test_diameter_unchanged_by_quarter_turns():
    image = disc_field(24, 40, seed=11)
    diameters = [particle_scale(np.rot90(image, turns)).diameter_px for turns in range(4)]
    assert np.ptp(diameters) < 0.02 * diameters[0]


def test_particle_scale_to_dict_is_json():
    found = particle_scale(disc_field(20, 60, seed=12))
    assert isinstance(found, ParticleScale)
    record = json.loads(json.dumps(found.to_dict()))
    assert record["diameter_px"] == pytest.approx(found.diameter_px)
    assert 0 < record["confidence"] <= 1
    assert record["quartiles_px"][0] <= record["diameter_px"] <= record["quartiles_px"][1]


def test_unknown_polarity_is_refused():
    with pytest.raises(NanofindInputError, match="polarity"):
        particle_scale(np.ones((64, 64)), polarity="grey")


# ---------------------------------------------------------------- resampling


def test_resample_factor():
    assert resample_factor(None) == 1.0
    assert resample_factor(24.0) == pytest.approx(2.0)
    assert resample_factor(96.0, target_px=48.0) == pytest.approx(0.5)
    assert resample_factor(1.0) == 4.0
    assert resample_factor(1000.0) == 0.125
    with pytest.raises(NanofindInputError):
        resample_factor(-3.0)
