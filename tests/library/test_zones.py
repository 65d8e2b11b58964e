"""Zone axes and projected columns against crystal geometry worked out by hand."""

import math
from itertools import product

import numpy as np
import pytest

from nanofind.library.prototypes import builtin_prototypes
from nanofind.library.zones import (
    distinct_zones,
    four_index,
    oriented_slab,
    parse_zone,
    point_group_rotations,
    project,
    three_index,
    tile_positions,
    zone_axes,
    zone_label,
)

A_AU = 4.078  # Å, the built-in lattice constant of Au
A_FE = 2.867
A_CSCL = 4.123


def prototype(kind, formula):
    (p,) = builtin_prototypes([kind], [formula])
    return p


def area(cell):
    return abs(float(np.linalg.det(cell)))


def neighbour_distances(projection, reach=2):
    """Distances from every column to all other columns (periodic images included), per column."""
    tiled = tile_positions(projection.cell_A, projection.positions_A, reach)
    out = []
    for xy in projection.positions_A:
        d = np.linalg.norm(tiled - xy, axis=1)
        out.append(np.sort(d[d > 1e-6]))
    return out


def lattice_vectors(cell, reach=4):
    ij = np.array(list(product(range(-reach, reach + 1), repeat=2)))
    vectors = ij @ cell
    return vectors[np.linalg.norm(vectors, axis=1) > 1e-9]


def shortest_lattice_vector_length(cell):
    return float(np.linalg.norm(lattice_vectors(cell), axis=1).min())


def is_lattice_vector(cell, xy):
    f = np.linalg.solve(np.asarray(cell).T, np.asarray(xy, float))
    return bool(np.allclose(f, np.round(f), atol=1e-6))


# ---- projected cells and columns ---------------------------------------------------------------


def test_fcc_110_is_a_centred_rectangle_of_single_atom_columns():
    p = project(prototype("fcc", "Au").atoms, (1, 1, 0))
    lengths = np.sort(np.linalg.norm(p.cell_A, axis=1))
    assert lengths == pytest.approx([A_AU / math.sqrt(2), A_AU], rel=1e-6)
    assert p.cell_A[0] @ p.cell_A[1] == pytest.approx(0.0, abs=1e-9)  # a rectangle
    assert len(p.positions_A) == 2
    # one column at a corner, one at the centre of the rectangle
    fractional = np.linalg.solve(p.cell_A.T, p.positions_A.T).T % 1.0
    fractional = np.round(fractional, 9) % 1.0
    assert sorted(map(tuple, fractional)) == [pytest.approx((0.0, 0.0), abs=1e-9), pytest.approx((0.5, 0.5), abs=1e-9)]
    # atoms along [1 1 0] are nearest neighbours, a/√2 apart
    assert p.atoms_per_A == pytest.approx([math.sqrt(2) / A_AU] * 2, rel=1e-9)
    assert np.all(p.numbers == 79)
    assert p.z_weight_per_A == pytest.approx(79 ** 1.7 * p.atoms_per_A, rel=1e-9)
    # nearest columns: corner to centre, √((a/2√2)² + (a/2)²) = a·√(3/8)
    assert p.min_column_distance_A == pytest.approx(A_AU * math.sqrt(3 / 8), rel=1e-6)
    # the crystal repeats along [1 1 0] every a/√2; the repeat given must be a period (a whole multiple of it)
    multiple = p.repeat_A / (A_AU / math.sqrt(2))
    assert multiple == pytest.approx(round(multiple), abs=1e-6) and round(multiple) >= 1


def test_fcc_111_columns_form_a_triangular_lattice():
    p = project(prototype("fcc", "Au").atoms, (1, 1, 1))
    d = A_AU / math.sqrt(6)  # the projected nearest-neighbour distance along [1 1 1]
    assert p.min_column_distance_A == pytest.approx(d, rel=1e-6)
    for distances in neighbour_distances(p):
        assert distances[:6] == pytest.approx([d] * 6, rel=1e-6)  # six nearest, at d
        assert distances[6] == pytest.approx(d * math.sqrt(3), rel=1e-6)  # then the next shell at d√3
    # atoms of a column repeat every a√3 (ABC stacking)
    assert p.atoms_per_A == pytest.approx(np.full(len(p.positions_A), 1 / (A_AU * math.sqrt(3))), rel=1e-9)


def test_bcc_100_nearest_columns_are_half_a_face_diagonal_apart():
    p = project(prototype("bcc", "Fe").atoms, (1, 0, 0))
    assert p.min_column_distance_A == pytest.approx(A_FE / math.sqrt(2), rel=1e-6)
    assert area(p.cell_A) / len(p.positions_A) == pytest.approx(A_FE ** 2 / 2, rel=1e-6)


def test_cscl_100_has_two_kinds_of_column_weighted_by_z_to_the_n():
    atoms = prototype("CsCl", "CsCl").atoms
    for n in (1.7, 2.0):
        p = project(atoms, (1, 0, 0), exponent=n)
        assert sorted(p.numbers) == [17, 55]
        cs, cl = p.z_weight_per_A[p.numbers == 55][0], p.z_weight_per_A[p.numbers == 17][0]
        assert cs / cl == pytest.approx((55 / 17) ** n, rel=1e-9)
        assert p.atoms_per_A == pytest.approx([1 / A_CSCL] * 2, rel=1e-9)
        # a Cs column sits at the centre of four Cl columns: a/√2 apart
        assert p.min_column_distance_A == pytest.approx(A_CSCL / math.sqrt(2), rel=1e-6)


def test_rocksalt_100_columns_hold_both_elements():
    # along [1 0 0] every column of rock salt alternates Mg and O, a/2 apart
    p = project(prototype("rocksalt", "MgO").atoms, (1, 0, 0))
    a = 4.212
    assert np.all(p.numbers == 12)  # the heaviest atom of each column
    assert p.atoms_per_A == pytest.approx(np.full(len(p.numbers), 2 / a), rel=1e-9)
    assert p.z_weight_per_A == pytest.approx(np.full(len(p.numbers), (12 ** 1.7 + 8 ** 1.7) / a), rel=1e-9)
    assert p.min_column_distance_A == pytest.approx(a / 2, rel=1e-6)


def test_hcp_0001_is_a_honeycomb():
    a, c = 3.209, 5.211  # Mg
    p = project(prototype("hcp", "Mg").atoms, (0, 0, 1))
    assert area(p.cell_A) == pytest.approx(a * a * math.sqrt(3) / 2, rel=1e-6)
    assert len(p.positions_A) == 2
    for distances in neighbour_distances(p):
        assert distances[:3] == pytest.approx([a / math.sqrt(3)] * 3, rel=1e-6)  # three nearest: honeycomb
        assert distances[3] == pytest.approx(a, rel=1e-6)
    assert p.atoms_per_A == pytest.approx([1 / c, 1 / c], rel=1e-9)


CONSERVATION_CASES = [("fcc", "Au", (1, 1, 0)), ("fcc", "Au", (2, 1, 1)), ("bcc", "Fe", (1, 1, 1)),
                      ("fluorite", "CeO2", (1, 1, 0)), ("rutile", "TiO2", (1, 0, 1)), ("hcp", "Mg", (1, 0, 0)),
                      ("perovskite", "SrTiO3", (1, 1, 0)), ("spinel", "MgAl2O4", (1, 1, 0)),
                      ("corundum", "Al2O3", (0, 0, 1)), ("wurtzite", "GaN", (1, 1, 0))]


@pytest.mark.parametrize("kind, formula, uvw", CONSERVATION_CASES)
def test_projection_conserves_atoms_and_weights(kind, formula, uvw):
    atoms = prototype(kind, formula).atoms
    volume = atoms.cell.volume
    p = project(atoms, uvw)
    # the projected cell is the cross-section of the cell: volume / length of the zone's lattice vector
    zone_length = float(np.linalg.norm(np.asarray(uvw, float) @ np.asarray(atoms.cell)))
    assert area(p.cell_A) == pytest.approx(volume / zone_length, rel=1e-6)
    # atoms per Å of thickness per Å² of projected area is the number density, whatever the columns
    assert p.atoms_per_A.sum() / area(p.cell_A) == pytest.approx(len(atoms) / volume, rel=1e-9)
    expected_weight = float(np.sum(atoms.numbers.astype(float) ** 1.7)) / volume
    assert p.z_weight_per_A.sum() / area(p.cell_A) == pytest.approx(expected_weight, rel=1e-9)
    # merging nearby columns moves atoms, never loses them
    merged = project(atoms, uvw, merge_distance_A=0.5)
    assert merged.atoms_per_A.sum() == pytest.approx(p.atoms_per_A.sum(), rel=1e-9)
    assert len(merged.positions_A) <= len(p.positions_A)
    # the projected frame: x runs along a shortest vector of the projected lattice
    shortest = shortest_lattice_vector_length(p.cell_A)
    assert np.linalg.norm(p.cell_A, axis=1).min() == pytest.approx(shortest, rel=1e-9)  # a reduced cell
    assert is_lattice_vector(p.cell_A, (shortest, 0.0))


def test_merging_joins_columns_closer_than_the_distance():
    atoms = prototype("fluorite", "CeO2").atoms
    apart = project(atoms, (2, 1, 1))
    assert apart.min_column_distance_A < 1.0
    merged = project(atoms, (2, 1, 1), merge_distance_A=1.0)
    assert len(merged.positions_A) < len(apart.positions_A)


def test_zone_axes_leave_out_unresolvable_zones():
    # fcc: [1 0 0] columns a/2 apart, [1 1 0] a·√(3/8), [1 1 1] a/√6 (1.66 Å)
    kept = [uvw for uvw, _ in zone_axes(prototype("fcc", "Au"), 1, min_column_distance_A=1.8)]
    assert kept == [(1, 0, 0), (1, 1, 0)]
    kept = [uvw for uvw, _ in zone_axes(prototype("fcc", "Au"), 1, min_column_distance_A=1.6)]
    assert kept == [(1, 0, 0), (1, 1, 0), (1, 1, 1)]


# ---- zone classes and indices ------------------------------------------------------------------


def coprime_directions(max_index):
    return [z for z in product(range(-max_index, max_index + 1), repeat=3)
            if z != (0, 0, 0) and math.gcd(math.gcd(abs(z[0]), abs(z[1])), abs(z[2])) == 1]


def test_cubic_zone_classes_are_the_thirteen_index_families():
    expected = {(0, 0, 1), (0, 1, 1), (1, 1, 1), (0, 1, 2), (1, 1, 2), (1, 2, 2), (0, 1, 3), (1, 1, 3), (0, 2, 3),
                (1, 2, 3), (2, 2, 3), (1, 3, 3), (2, 3, 3)}
    assert {tuple(sorted(map(abs, z))) for z in coprime_directions(3)} == expected  # the families themselves
    for spacegroup in (225, 229, 221, 216):  # m-3m, and -43m (the same once opposite directions are one)
        zones = distinct_zones(3, point_group_rotations(spacegroup))
        assert len(zones) == 13
        assert {tuple(sorted(map(abs, z))) for z in zones} == expected


def test_tetragonal_zone_classes_keep_c_apart_from_a():
    # 4/mmm: [u v w] ~ any order and signs of (u, v), any sign of w
    def key(z):
        return tuple(sorted(map(abs, z[:2]))), abs(z[2])

    zones = distinct_zones(2, point_group_rotations(136))
    assert len({key(z) for z in zones}) == len(zones)
    assert {key(z) for z in zones} == {key(z) for z in coprime_directions(2)}
    assert key((0, 0, 1)) in {key(z) for z in zones} and key((1, 0, 0)) in {key(z) for z in zones}


def hexagonal_class(z):
    """6/mmm with opposite directions merged: [U V T W] ~ any order and common sign of U, V, T, any sign of W."""
    u, v, t, w = four_index(z)
    uvt = tuple(sorted((u, v, t)))
    return min(uvt, tuple(sorted((-u, -v, -t)))), abs(w)


@pytest.mark.parametrize("max_index", [1, 2])
def test_hexagonal_zone_classes(max_index):
    zones = distinct_zones(max_index, point_group_rotations(194))
    classes = [hexagonal_class(z) for z in zones]
    assert len(set(classes)) == len(zones)  # no class twice
    assert set(classes) == {hexagonal_class(z) for z in coprime_directions(max_index)}  # none missing
    assert hexagonal_class((0, 0, 1)) != hexagonal_class((1, 0, 0))  # c is not a
    assert hexagonal_class((1, 0, 0)) == hexagonal_class((1, 1, 0))  # [2 -1 -1 0] ~ [1 1 -2 0]
    assert hexagonal_class((1, -1, 0)) == hexagonal_class((2, 1, 0))  # [1 -1 0 0] ~ [1 0 -1 0]


def test_every_direction_belongs_to_exactly_one_listed_class():
    rotations = point_group_rotations(194)
    zones = distinct_zones(2, rotations)
    for z in coprime_directions(2):
        images = {tuple(int(x) for x in s * (r @ np.asarray(z))) for r in rotations for s in (1, -1)}
        assert len(images & set(zones)) == 1


def test_max_index_below_one_is_refused():
    with pytest.raises(ValueError, match="max_index"):
        distinct_zones(0, point_group_rotations(225))


def test_four_and_three_index_notation():
    assert four_index((1, 0, 0)) == (2, -1, -1, 0)
    assert four_index((1, 1, 0)) == (1, 1, -2, 0)
    assert four_index((0, 0, 1)) == (0, 0, 0, 1)
    assert four_index((1, -1, 0)) == (1, -1, 0, 0)
    assert four_index((1, 0, 1)) == (2, -1, -1, 3)
    for z in [(1, 0, 0), (0, 1, 0), (1, 1, 0), (1, -1, 0), (0, 0, 1), (1, 0, 1), (2, 1, 3), (-1, 2, 1), (3, 1, 1)]:
        u, v, t, _ = four_index(z)
        assert u + v + t == 0
        assert three_index(four_index(z)) == z


def test_zone_labels_and_parsing():
    assert zone_label((1, 1, 0), False) == "[1 1 0]"
    assert zone_label((-1, 2, 0), False) == "[-1 2 0]"
    assert zone_label((1, 0, 0), True) == "[2 -1 -1 0]"
    assert zone_label((0, 0, 1), True) == "[0 0 0 1]"
    for text in ("[1 1 0]", "110", "1,1,0", "<1 1 0>"):
        assert parse_zone(text) == (1, 1, 0)
    assert parse_zone("[2 -1 -1 0]") == (2, -1, -1, 0)
    assert three_index(parse_zone(zone_label((2, 1, 3), True))) == (2, 1, 3)


# ---- oriented slabs ----------------------------------------------------------------------------


SLAB_CASES = [("fcc", "Au", (1, 1, 0)), ("fcc", "Au", (1, 1, 1)), ("fcc", "Au", (1, 0, 0)),
              ("rutile", "TiO2", (1, 0, 1)), ("hcp", "Mg", (1, 0, 0)), ("hcp", "Mg", (0, 0, 1)),
              ("spinel", "MgAl2O4", (1, 1, 0))]


@pytest.mark.parametrize("kind, formula, uvw", SLAB_CASES)
def test_oriented_slab_fills_its_box_at_the_crystal_density(kind, formula, uvw):
    # one box holds a plane more or less along each axis (±5 % here); over uniformly random translations
    # of the crystal the expected count is exactly density × volume
    atoms = prototype(kind, formula).atoms
    size, thickness, vacuum = 30.0, 24.0, 2.0
    expected = len(atoms) / atoms.cell.volume * size * size * thickness
    rng = np.random.default_rng(5)
    counts = []
    for _ in range(16):
        moved = atoms.copy()
        moved.translate(rng.uniform(0, 1, 3) @ np.asarray(atoms.cell))
        moved.wrap()
        slab = oriented_slab(moved, uvw, size, thickness, vacuum_A=vacuum)
        counts.append(len(slab))
        xyz = slab.positions
        assert xyz[:, :2].min() >= -1e-9 and xyz[:, :2].max() <= size + 1e-9
        assert xyz[:, 2].min() >= vacuum - 1e-9 and xyz[:, 2].max() <= vacuum + thickness + 1e-9
    assert np.mean(counts) == pytest.approx(expected, rel=0.04)
    assert np.allclose(slab.cell.lengths(), [size, size, thickness + 2 * vacuum])
    assert sorted(set(slab.numbers)) == sorted(set(atoms.numbers))
    # and the composition is the crystal's
    fraction = np.mean(slab.numbers == atoms.numbers.max())
    assert fraction == pytest.approx(np.mean(atoms.numbers == atoms.numbers.max()), abs=0.05)


def test_oriented_slab_has_the_zone_along_z():
    # fcc Au along [1 1 0]: atoms stacked on one (x, y) are nearest neighbours, a/√2 apart
    slab = oriented_slab(prototype("fcc", "Au").atoms, (1, 1, 0), 20.0, 20.0)
    xy = np.round(slab.positions[:, :2], 4)
    keys, inverse, counts = np.unique(xy, axis=0, return_inverse=True, return_counts=True)
    assert counts.max() >= 6  # columns run along z
    for k in np.flatnonzero(counts >= 3)[:20]:
        z = np.sort(slab.positions[inverse.ravel() == k, 2])
        assert np.diff(z) == pytest.approx(np.full(len(z) - 1, A_AU / math.sqrt(2)), abs=1e-6)


def test_oriented_slab_projects_onto_the_projection_pattern():
    atoms = prototype("rutile", "TiO2").atoms
    p = project(atoms, (0, 0, 1))
    size = 20.0
    slab = oriented_slab(atoms, (0, 0, 1), size, 12.0)
    xy = slab.positions[:, :2] - size / 2  # the projection's cell origin is the slab's centre
    fractional = np.linalg.solve(p.cell_A.T, xy.T).T
    reduced = (fractional - np.floor(fractional)) @ p.cell_A
    columns = tile_positions(p.cell_A, p.positions_A, 1)
    nearest = np.min(np.linalg.norm(reduced[:, None, :] - columns[None, :, :], axis=2), axis=1)
    assert nearest.max() < 1e-6


@pytest.mark.parametrize("kind, formula, uvw", [("fcc", "Au", (2, 1, 1)), ("bcc", "Fe", (1, 1, 1)),
                                                ("hcp", "Mg", (0, 0, 1)), ("fluorite", "CeO2", (1, 1, 1))])
def test_first_cell_vector_lies_along_plus_x(kind, formula, uvw):
    cell = project(prototype(kind, formula).atoms, uvw).cell_A
    assert cell[0, 0] > 0 and cell[0, 1] == pytest.approx(0.0, abs=1e-9)
    assert cell[1, 1] > 0  # "the second with positive y"
