"""Grains, planar defects and five-fold axes of nanofind's own particles, against their construction."""

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial import cKDTree

from nanofind.scene.crystal import CrystalGenerator, PlanarDefect
from nanofind.scene.lattice import load_unit_cell, plane_normal, plane_spacing
from nanofind.scene.multiply_twinned import DecahedronGenerator, IcosahedronGenerator
from nanofind.scene.orientation import zone_axis_rotation
from nanofind.scene.volumes import Cylinder, Sphere
from nanofind.structure.analysis import analyze_structure, particle_type, summarize_structure

AU = load_unit_cell("Au")
D_AU = 4.078 / np.sqrt(2)


def _atoms(generated) -> Atoms:
    return Atoms(numbers=generated.numbers, positions=generated.positions)


def _jagodzinski(positions: np.ndarray, normal: np.ndarray, spacing: float) -> dict[int, str]:
    """Stacking symbol of every inner close-packed layer: 'h' if its two neighbours sit on the
    same sites (projected along the normal), else 'c'. Independent of the analysis under test."""
    layer = np.round(positions @ normal / spacing).astype(int)
    flat = positions - np.outer(positions @ normal, normal)
    symbols = {}
    for k in np.unique(layer)[1:-1]:
        above, below = flat[layer == k + 1], flat[layer == k - 1]
        probe = above[np.argmin(np.linalg.norm(above, axis=1))]
        symbols[int(k)] = "h" if cKDTree(below).query(probe)[0] < 0.2 else "c"
    return symbols


def _faulted_column(kind: str, material: str = "Au", plane=(1, 1, 1)):
    cell = load_unit_cell(material)
    normal = plane_normal(cell.cell, plane)
    atoms = _atoms(CrystalGenerator(cell, defects=(PlanarDefect(kind, plane, 0.3),))
                   .generate(Cylinder([0, 0, 0], normal, 14.0, 40.0)))
    return atoms, normal


@pytest.mark.parametrize("kind,stacking,planes", [
    ("twin", "h", [("twin", 1)]),
    ("intrinsic", "hh", [("intrinsic", 2)]),
    ("extrinsic", "hch", [("extrinsic", 3)]),
])
def test_planar_defects_match_the_layer_stacking(kind, stacking, planes):
    atoms, normal = _faulted_column(kind)
    spacing = plane_spacing(AU.cell, (1, 1, 1))
    symbols = _jagodzinski(atoms.positions, normal, spacing)
    assert "".join(symbols[k] for k in sorted(symbols)).strip("c") == stacking
    result = analyze_structure(atoms)
    layer = np.round(atoms.positions @ normal / spacing).astype(int)
    inside = result.local.coordination == 12
    for k, symbol in symbols.items():  # every full-shell atom of an 'h' layer is hcp, of a 'c' layer fcc
        members = inside & (layer == k)
        assert set(result.class_names[members]) <= {"hcp" if symbol == "h" else "fcc"}, (k, symbol)
    found = [(p.kind, p.layers) for p in result.defects.planes]
    assert found == planes
    assert abs(np.asarray(result.defects.planes[0].normal) @ normal) > np.cos(np.radians(2))
    assert len(result.defects.grain_owner) == 2  # the matrix on either side; a fault's fcc sheet is no grain


def test_wurtzite_fault_layers_are_the_cubic_ones():
    atoms, normal = _faulted_column("intrinsic", "CdSe", (0, 0, 0, 1))
    cd = atoms[atoms.numbers == 48]
    half_c = load_unit_cell("CdSe").cell.lengths()[2] / 2
    cubic = [k for k, s in _jagodzinski(cd.positions, normal, half_c).items() if s == "c"]
    summary = summarize_structure(atoms, analyze_structure(atoms))
    (particle,) = summary["per_particle"]
    assert particle["counted_on"] == "Cd"
    (fault,) = particle["planar_defects"]
    assert fault["layers"] == len(cubic)
    assert fault["kind"] == {1: "fault_I1", 2: "fault_I2", 3: "fault_E"}[len(cubic)]
    assert particle["grains"] == 2


def test_lamellar_twins_and_edge_on_planes():
    gen = CrystalGenerator(AU, zone_axis_rotation(AU.cell, [1, 1, 0]),
                           defects=tuple(PlanarDefect("twin", (1, -1, 1), x) for x in (-9.0, 0.5, 9.5)))
    atoms = _atoms(gen.generate(Sphere([0, 0, 0], 22.0)))
    summary = summarize_structure(atoms, analyze_structure(atoms))
    (particle,) = summary["per_particle"]
    assert particle["type"] == "lamellar twinned"
    assert particle["grains"] == 4
    assert [p["kind"] for p in particle["planar_defects"]] == ["twin"] * 3
    # viewed along [110], the (1-11) planes contain the beam: edge-on, so visible
    assert all(p["tilt_from_edge_on_deg"] < 1.0 for p in particle["planar_defects"])
    assert particle["visible_planar_defects"] == ["twin"] * 3


def test_tilted_twin_is_not_visible():
    gen = CrystalGenerator(AU, zone_axis_rotation(AU.cell, [1, 1, 1]), defects=(PlanarDefect("twin", (1, 1, 1), 0.5),))
    atoms = _atoms(gen.generate(Sphere([0, 0, 0], 18.0)))
    (particle,) = summarize_structure(atoms, analyze_structure(atoms))["per_particle"]
    (twin,) = particle["planar_defects"]
    assert twin["tilt_from_edge_on_deg"] > 85  # the (111) plane lies flat, normal to the beam
    assert particle["visible_planar_defects"] == []


@pytest.mark.parametrize("material,zone,plane,visible", [
    ("Au", [1, 1, 0], (1, -1, 1), True),        # down a <110> row: the stacking shift crosses the beam
    ("Au", [2, 1, 1], (1, -1, -1), False),      # edge-on, but down the a/6<112> shift: no contrast
    ("CdSe", [2, -1, -1, 0], (0, 0, 0, 1), True),   # wurtzite down <11-20>
    ("CdSe", [1, 0, -1, 0], (0, 0, 0, 1), False),   # wurtzite down <1-100>, the 1/3<1-100> shift
])
def test_edge_on_fault_is_visible_only_down_a_close_packed_row(material, zone, plane, visible):
    cell = load_unit_cell(material)
    rotation = zone_axis_rotation(cell.cell, zone, in_plane_deg=17.0)
    normal = rotation @ plane_normal(cell.cell, plane)
    assert abs(normal[2]) < 1e-9  # both planes contain the beam
    gen = CrystalGenerator(cell, rotation, defects=(PlanarDefect("intrinsic", plane, 0.5),))
    atoms = _atoms(gen.generate(Sphere([0, 0, 0], 20.0)))
    (particle,) = summarize_structure(atoms, analyze_structure(atoms))["per_particle"]
    (fault,) = particle["planar_defects"]
    assert fault["tilt_from_edge_on_deg"] < 1.0
    # independent geometry: the rows of a close-packed plane are its in-plane nearest-neighbour
    # bonds; the beam meets one of them (0°) or bisects two (30°)
    assert fault["beam_to_row_deg"] == pytest.approx(0.0 if visible else 30.0, abs=1.5)
    assert bool(particle["visible_planar_defects"]) is visible


def test_decahedron_has_five_twin_planes_meeting_at_its_axis():
    gen = DecahedronGenerator("Au", D_AU, "strain", 0.0)
    atoms = _atoms(gen.generate(gen.bipyramid(8)))
    result = analyze_structure(atoms)
    summary = summarize_structure(atoms, result)
    (particle,) = summary["per_particle"]
    assert particle["type"] == "decahedron"
    assert particle["grains"] == 5
    twins = [p for p in particle["planar_defects"] if p["kind"] == "twin"]
    assert len(twins) == 5
    (axis,) = particle["fivefold_axes"]
    assert abs(axis["direction"][2]) > np.cos(np.radians(1))  # the generator's axis is z
    assert axis["twin_planes"] == 5
    # the planes contain the axis and sit 72° apart (the strained gap closes the 7.35° wedge)
    normals = np.array([p["normal"] for p in twins])
    assert np.all(np.abs(normals[:, 2]) < 0.02)
    azimuth = np.sort(np.degrees(np.arctan2(normals[:, 1], normals[:, 0])) % 180)
    gaps = np.diff(np.concatenate([azimuth, azimuth[:1] + 180]))
    assert np.allclose(np.sort(gaps), 36.0, atol=1.5)  # plane normals 36° apart modulo 180°
    on_axis = result.class_names == "fivefold"
    assert np.allclose(atoms.positions[on_axis, :2], 0.0, atol=1e-6)


def test_icosahedron_has_twenty_grains_and_six_axes():
    gen = IcosahedronGenerator("Au", D_AU)
    atoms = _atoms(gen.generate(gen.mackay(7)))
    result = analyze_structure(atoms)
    (particle,) = summarize_structure(atoms, result)["per_particle"]
    assert particle["type"] == "icosahedron"
    assert particle["grains"] == 20
    assert len(particle["fivefold_axes"]) == 6
    assert sum(result.class_names == "icosahedral") == 1
    assert np.linalg.norm(atoms.positions[result.class_names == "icosahedral"][0]) < 1e-6
    assert {a["twin_planes"] for a in particle["fivefold_axes"]} == {5}


def test_particle_type_names():
    assert particle_type([], [], 1) == "single crystal"
    assert particle_type([], [], 0) == "disordered"
