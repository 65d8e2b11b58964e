import numpy as np
import pytest

from nanofind.scene.amorphous import AmorphousGenerator
from nanofind.scene.crystal import CrystalGenerator
from nanofind.scene.lattice import load_unit_cell
from nanofind.scene.neighbours import min_distances_by_pair, pairs_within
from nanofind.scene.placement import PlacementError, rest_on, rest_touching, scatter_xy
from nanofind.scene.scene import Scene, SceneObject, default_clearance_A
from nanofind.scene.volumes import ConvexPolyhedron, Sphere

AU = load_unit_cell("Au")
FIELD = (60.0, 60.0)


def _substrate(seed=0, thickness=15.0):
    gen = AmorphousGenerator(density_g_cm3=2.0, min_distance_A=1.3, lateral_period_A=FIELD)
    box = ConvexPolyhedron.box([0, 0, 1], [*FIELD, 1 + thickness])
    return SceneObject(gen, box, priority=10, name="substrate", is_particle=False, seed=seed, carves=False)


def _particle(radius=12.0, priority=0):
    return SceneObject(CrystalGenerator(AU), Sphere([0, 0, 0], radius), priority=priority, name="Au", carves=False)


def test_default_clearance_is_2A_between_metal_and_carbon():
    assert default_clearance_A(79, 6) == 2.0 and default_clearance_A(6, 78) == 2.0


def test_particle_rests_on_carbon_at_exactly_the_clearance():
    sub = _substrate()
    particle = rest_on(_particle(), sub.atoms(), (30, 30), lateral_period_A=FIELD)
    au, c = particle.atoms(), sub.atoms()
    _, _, d = pairs_within(au.positions, 5.0, others=c.positions, lateral_period_A=FIELD)
    assert d.min() == pytest.approx(2.0, abs=1e-4)
    # resting, not floating: lowering it by 0.05 Å would break the clearance
    lowered = au.positions - [0, 0, 0.05]
    assert pairs_within(lowered, 5.0, others=c.positions, lateral_period_A=FIELD)[2].min() < 2.0
    # it sits above the slab, not inside it
    assert au.positions[:, 2].min() > c.positions[:, 2].max() - 2.0


def test_clearance_override_per_pair():
    sub = _substrate()
    particle = rest_on(_particle(), sub.atoms(), (30, 30), clearance_A={"Au-C": 3.0}, lateral_period_A=FIELD)
    d = pairs_within(particle.atoms().positions, 6.0, others=sub.atoms().positions, lateral_period_A=FIELD)[2]
    assert d.min() == pytest.approx(3.0, abs=1e-4)


def test_priority_resolves_overlaps():
    a = SceneObject(CrystalGenerator(AU), Sphere([0, 0, 0], 10.0), priority=0, name="a",
                    offset_A=np.array([30, 30, 20.]))
    b = SceneObject(CrystalGenerator(load_unit_cell("Pt")), Sphere([0, 0, 0], 10.0), priority=1, name="b",
                    offset_A=np.array([40, 30, 20.]))
    atoms = Scene((60, 60, 50), [b, a]).build()  # added in the other order: priority decides
    pt = atoms.positions[atoms.numbers == 78]
    au = atoms.positions[atoms.numbers == 79]
    assert len(au) == len(a.atoms().numbers)  # the winner keeps every atom
    assert np.all(np.linalg.norm(pt - [30, 30, 20], axis=1) > 10.0)  # loser is carved out of the winner
    assert min_distances_by_pair(atoms.positions, atoms.get_chemical_symbols())["Au-Pt"] >= default_clearance_A(79, 78)
    assert atoms.arrays["object_id"][atoms.numbers == 79][0] == 1  # object ids follow the order added


@pytest.mark.parametrize("neighbour_xy, direction_deg", [
    ((22, 30), 0.0),
    # the neighbour sits against the left edge and the asked direction points out of the field,
    # where the slide starts wholly outside it: the particle still ends touching, partly inside
    ((9, 30), 180.0),
])
def test_touching_pair_contacts_at_requested_distance(neighbour_xy, direction_deg):
    sub = _substrate()
    first = rest_on(_particle(10.0), sub.atoms(), neighbour_xy, lateral_period_A=FIELD)
    second = rest_touching(_particle(8.0, 1), first, sub.atoms(), direction_deg, contact_A=2.884,
                           lateral_period_A=FIELD)
    d = pairs_within(first.atoms().positions, 6.0, others=second.atoms().positions)[2]
    assert 2.884 <= d.min() < 2.884 + 0.05
    kept = second.atoms().positions  # the scene keeps only the atoms inside the field
    kept = kept[((kept[:, :2] >= 0) & (kept[:, :2] < FIELD)).all(axis=1)]
    assert len(kept)
    d_sub = pairs_within(kept, 6.0, others=sub.atoms().positions, lateral_period_A=FIELD)[2]
    assert d_sub.min() >= 2.0 - 1e-9


def test_scatter_keeps_discs_apart_and_cuts_at_edges():
    rng = np.random.default_rng(0)
    radii = [20, 15, 10, 10]
    xy = scatter_xy(radii, (200, 200), rng, gap_A=5.0)
    for i in range(4):
        assert radii[i] <= xy[i, 0] <= 200 - radii[i] and radii[i] <= xy[i, 1] <= 200 - radii[i]
        for j in range(i):
            assert np.linalg.norm(xy[i] - xy[j]) >= radii[i] + radii[j] + 5.0
    cut = scatter_xy([20], (200, 200), rng, edge_cut=[True])[0]
    assert min(cut[0], cut[1], 200 - cut[0], 200 - cut[1]) < 20
    with pytest.raises(PlacementError, match="could not fit"):
        scatter_xy([40] * 12, (200, 200), rng, max_tries=200)


def test_particle_cut_by_field_edge_keeps_only_atoms_inside():
    sub = _substrate()
    edge = rest_on(_particle(12.0), sub.atoms(), (2.0, 30.0), lateral_period_A=FIELD)
    atoms = Scene((*FIELD, 40), [edge, sub]).build()
    au = atoms.positions[atoms.numbers == 79]
    assert 0 < len(au) < 0.8 * len(edge.atoms().numbers)
    assert au[:, 0].min() >= 0 and au[:, 0].max() < 60
