"""Particle-field geometry: projected thickness of convex solids, placement modes, labels, film."""

import math

import numpy as np
import pytest

from nanofind.scene.orientation import rotation_about_axis
from nanofind.simulate.film import Film, film_thickness_A, smooth_random_field
from nanofind.simulate.particle_field import (
    SHAPES,
    FieldParticle,
    arrange,
    make_solid,
    projected_thickness,
    random_orientation,
    relabel_instances,
    render_particles,
)


def _distance_map(shape, centre_rc):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    return np.hypot(rows - centre_rc[0], cols - centre_rc[1])


def test_sphere_thickness_is_the_chord():
    d = 30.0
    t = projected_thickness(make_solid("sphere", d), (50.5, 50.5), (101, 101))
    assert t[50, 50] == pytest.approx(d, rel=1e-5)  # the ray through the centre crosses a diameter
    r = _distance_map(t.shape, (50.5, 50.5))
    chord = 2 * np.sqrt(np.clip((d / 2) ** 2 - r**2, 0, None))
    assert np.allclose(t, chord, atol=2e-3)
    assert np.all(t[r > d / 2] == 0)


def test_cube_along_001_is_a_square_of_constant_thickness():
    edge = 20.0
    cube = make_solid("cube", (6 * edge**3 / math.pi) ** (1 / 3))
    t = projected_thickness(cube, (50.0, 50.0), (100, 100))
    inside = t > 0
    rows, cols = np.nonzero(inside)
    assert inside.sum() == 400 and rows.min() == 40 and rows.max() == 59 and cols.min() == 40 and cols.max() == 59
    assert np.allclose(t[inside], edge, rtol=1e-4)
    # turned about the beam it is a diamond of the same area and thickness
    turned = projected_thickness(cube.rotated(rotation_about_axis([0, 0, 1], 45)), (50.3, 50.2), (100, 100))
    assert abs((turned > 0).sum() - edge**2) < 0.05 * edge**2
    assert np.allclose(turned[turned > 0], edge, rtol=1e-4)
    assert turned[50, 50 + int(edge / 2 * math.sqrt(2)) - 2] > 0  # corner along x at half-diagonal


def test_octahedron_along_001_is_a_diamond_twice_as_thick_as_its_half_diagonal():
    octa = make_solid("octahedron", 24.0)
    s = (3 * octa.volume / 4) ** (1 / 3)  # |x| + |y| + |z| <= s
    t = projected_thickness(octa, (50.5, 50.5), (101, 101))
    assert t[50, 50] == pytest.approx(2 * s, rel=1e-4)
    assert abs((t > 0).sum() - 2 * s**2) < 0.05 * 2 * s**2  # a square of diagonal 2s


def test_cylinder_end_on_and_side_on():
    rod = make_solid("rod", 20.0, aspect=3.0)
    radius = (rod.volume / (2 * math.pi * 3.0)) ** (1 / 3)
    length = 6 * radius
    end_on = projected_thickness(rod, (60.5, 60.5), (121, 121))
    assert end_on[60, 60] == pytest.approx(length, rel=1e-4)
    assert abs((end_on > 0).sum() - math.pi * radius**2) < 0.05 * math.pi * radius**2
    side_on = projected_thickness(rod.rotated(rotation_about_axis([1, 0, 0], 90)), (60.5, 60.5), (121, 121))
    assert side_on[60, 60] == pytest.approx(2 * radius, rel=1e-3)
    rows, cols = np.mgrid[0:121, 0:121] + 0.5
    rectangle = (np.abs(rows - 60.5) < length / 2) & (np.abs(cols - 60.5) < radius)  # the axis turned onto y
    assert np.array_equal(side_on > 0, rectangle)


@pytest.mark.parametrize("shape", SHAPES)
def test_thickness_integrates_to_the_volume_and_covers_the_projected_area(shape):
    rng = np.random.default_rng(7)
    solid = make_solid(shape, 30.0, aspect=3.0 if "rod" in shape else 0.3)
    assert solid.volume == pytest.approx(math.pi * 30.0**3 / 6)
    for _ in range(4):
        turned = solid.rotated(random_orientation(shape, rng))
        t = projected_thickness(turned, tuple(rng.uniform(90, 110, 2)), (200, 200))
        assert t.sum() == pytest.approx(turned.volume, rel=0.02)  # pixel area 1
        # Cauchy: the footprint's area is half the sum of |n_z| × face area
        assert (t > 0).sum() == pytest.approx(turned.projected_area(), rel=0.04)


def test_flat_plates_lie_on_the_film():
    rng = np.random.default_rng(3)
    plate = make_solid("hexagonal_plate", 20.0, aspect=0.2)
    for _ in range(10):
        normal = random_orientation("hexagonal_plate", rng, flat_plate=True) @ [0, 0, 1]
        assert np.degrees(np.arccos(abs(normal[2]))) <= 10.0 + 1e-9
    assert plate.projected_area() > 3 * plate.rotated(rotation_about_axis([1, 0, 0], 90)).projected_area()


def _sphere(d, centre, group=0, material="Au"):
    return FieldParticle(make_solid("sphere", d), centre, material, d, 0.0, group)


def test_thicker_particle_wins_where_footprints_overlap():
    big, small = _sphere(30.0, (50.0, 40.0)), _sphere(16.0, (50.0, 60.0), material="Ag")
    r = render_particles([big, small], (100, 100), pixel_size_A=2.0)
    t_big = projected_thickness(big.solid, big.centre_rc, (100, 100)) * 2.0
    t_small = projected_thickness(small.solid, small.centre_rc, (100, 100)) * 2.0
    assert np.allclose(r.thickness_A["Au"], t_big, atol=1e-3) and np.allclose(r.thickness_A["Ag"], t_small, atol=1e-3)
    both = (t_big > 0) & (t_small > 0)
    assert both.any()
    assert np.all(r.owner[both] == np.where(t_big[both] > t_small[both], 1, 2))
    assert np.all(r.owner[(t_big > 0) & ~both] == 1) and np.all(r.owner[(t_small > 0) & ~both] == 2)


def test_relabel_gives_consecutive_ids_in_particle_order():
    owner = np.array([[0, 5, 5], [9, 0, 2]], np.int32)
    ids, source = relabel_instances(owner)
    assert ids.tolist() == [[0, 2, 2], [3, 0, 1]] and source == [1, 4, 8]


def _spheres(rng, median=12.0):
    def make(group):
        return _sphere(median * float(np.exp(rng.normal(0, 0.1))), (0.0, 0.0), group)
    return make


def _centres_and_radii(particles):
    return np.array([p.centre_rc for p in particles]), np.array([p.diameter_px / 2 for p in particles])


def test_isolated_particles_never_touch_and_reach_the_coverage():
    rng = np.random.default_rng(1)
    placed = arrange("isolated", _spheres(rng), (300, 300), 0.2, rng)
    c, r = _centres_and_radii(placed)
    d = np.hypot(*(c[:, None, :] - c[None, :, :]).transpose(2, 0, 1))
    gap = d - r[:, None] - r[None, :]
    assert gap[~np.eye(len(c), dtype=bool)].min() >= 1.0 - 1e-9
    covered = sum(math.pi * x**2 for x in r) / 300**2
    assert 0.2 <= covered < 0.2 + 2 * math.pi * r.max() ** 2 / 300**2


def test_chains_are_in_contact_and_agglomerates_overlap_at_most_as_asked():
    rng = np.random.default_rng(2)
    chains = arrange("touching", _spheres(rng), (300, 300), 0.15, rng, chain_length=(3, 3))
    groups = {}
    for p in chains:
        groups.setdefault(p.group, []).append(p)
    linked = 0
    for members in groups.values():
        for a, b in zip(members[:-1], members[1:], strict=True):  # each particle was attached to the one before
            d = math.dist(a.centre_rc, b.centre_rc)
            assert 0.93 - 1e-9 <= d / ((a.diameter_px + b.diameter_px) / 2) <= 1.0 + 1e-9
            linked += 1
    assert linked >= 5
    clusters = arrange("agglomerates", _spheres(rng), (300, 300), 0.2, rng, cluster_size=(5, 10), overlap=0.15)
    c, r = _centres_and_radii(clusters)
    g = np.array([p.group for p in clusters])
    d = np.hypot(*(c[:, None, :] - c[None, :, :]).transpose(2, 0, 1)) / (r[:, None] + r[None, :])
    same = (g[:, None] == g[None, :]) & ~np.eye(len(c), dtype=bool)
    assert d[same].min() >= 0.85 - 1e-9  # overlap at most 15 % of the contact distance
    assert d[(g[:, None] != g[None, :])].min() > 1.0  # clusters do not touch each other
    assert np.bincount(g).max() >= 5


def test_monolayer_is_near_hexagonal_at_the_asked_coverage():
    rng = np.random.default_rng(4)
    placed = arrange("monolayer", _spheres(rng, 10.0), (400, 400), 0.5, rng, jitter=0.03, vacancies=0.0, voids=0.0)
    c, r = _centres_and_radii(placed)
    inner = np.all((c > 40) & (c < 360), axis=1)
    d = np.hypot(*(c[:, None, :] - c[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    spacing = np.median(d.min(axis=1))
    assert spacing == pytest.approx(math.sqrt(2 * math.pi * 25 / (math.sqrt(3) * 0.5)), rel=0.06)
    neighbours = (d[inner] < 1.2 * spacing).sum(axis=1)
    assert np.median(neighbours) == 6
    assert sum(math.pi * x**2 for x in r) / 400**2 == pytest.approx(0.5, rel=0.1)


def test_smooth_random_field_has_unit_variance_and_its_smoothing_length():
    field = smooth_random_field((256, 256), 4.0, np.random.default_rng(0))
    assert field.var() == pytest.approx(1.0, rel=0.15)
    # Gaussian smoothing of rms s gives a Gaussian correlation of rms s√2
    lag = 4
    corr = np.mean(field[:, lag:] * field[:, :-lag]) / field.var()
    assert corr == pytest.approx(np.exp(-(lag**2) / (4 * 4.0**2)), abs=0.08)


def test_film_has_its_mean_thickness_and_is_empty_in_holes_and_beyond_its_edge():
    rng = np.random.default_rng(5)
    film = Film(200.0, 2.0, variation=0.1, smoothing_A=50.0, granularity=1.0,
                holes=((50.0, 50.0, 20.0, 20.0, 0.0),), edge=(0.0, 60.0, 0.0, 100.0))
    t = film_thickness_A(film, (200, 200), 5.0, rng)
    rows, cols = np.mgrid[0:200, 0:200] + 0.5
    hole = np.hypot(rows - 50, cols - 50) <= 20
    beyond = cols - 100 > 60
    assert np.all(t[hole] == 0) and np.all(t[beyond] == 0)
    film_part = t[~hole & ~beyond & (np.hypot(rows - 50, cols - 50) > 22) & (cols - 100 < 58)]
    assert film_part.min() > 0 and film_part.mean() == pytest.approx(200.0, rel=0.05)
