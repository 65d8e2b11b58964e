import numpy as np
import pytest

from nanofind.errors import NanofindInputError
from nanofind.scene.build import build_scene, parse_miller
from nanofind.scene.recipe import load_recipe, parse_recipe, sample_scene_spec


def test_examples_validate(recipes_dir):
    names = {p.stem for p in recipes_dir.glob("*.yaml")}
    assert {"au5nm_110_on_carbon", "twinned_au", "decahedron_au", "icosahedron_au", "carbon_12x12x5"} <= names
    for path in recipes_dir.glob("*.yaml"):
        text = path.read_text()
        if "\ndetector:" in text:  # simulation recipes: scene keys plus optics and detector
            from nanofind.simulate.recipe import load_simulation_recipe

            load_simulation_recipe(path)
        elif "\nrenderer:" in text:  # structure-library specs
            from nanofind.library.spec import load_spec

            load_spec(path)
        else:
            load_recipe(path)


@pytest.mark.parametrize("data,message", [
    ({"particles": [{"diameter_A": -5}]}, r"particles\[0\]\.diameter_A: must be > 0 Å, got -5"),
    ({"particles": [{"zone_axis": [0, 0, 0]}]}, r"particles\[0\]\.zone_axis: zone axis cannot be zero"),
    ({"particles": [{"colour": "red"}]}, r"particles\[0\]\.colour: unknown key"),
    ({"substrat": {}}, r"substrat: unknown key"),
    ({"substrate": {"thickness_A": {"uniform": [-2, 5]}}}, r"substrate\.thickness_A: must be > 0 Å, got -2"),
    ({"field": {"size_A": [0, 10]}}, r"field\.size_A: field size must be > 0"),
    ({"particles": [{"shape": "cube"}]}, r"particles\[0\]\.shape: unknown shape 'cube'"),
    ({"particles": [{"defects": {"twin": 1.5}}]}, r"particles\[0\]\.defects\.twin: must be in \[0, 1\]"),
    ({"particles_per_field": 2}, r"particles_per_field needs at least one particle type"),
    ({"particles": [{"shape": {"foo": 1}}]}, r"particles\[0\]\.shape: unknown shape"),
    ({"particles": [{"material": {"choice": ["Au", "Zz"]}}]}, r"particles\[0\]\.material: unknown material 'Zz'"),
    ({"particles": [{"zone_axis": [1, 1, 0, 1]}]}, r"zone_axis: four-index axis \[1, 1, 0, 1\] needs its third"),
    ({"particles": [{"defects": {"plane": [0, 0, 0]}}]}, r"defects\.plane: plane needs 3"),
    ({"particles": [{"defects": {"substitution": {"element": "Qq", "fraction": 0.1}}}]}, r"unknown element 'Qq'"),
    ({"substrate": {"composition": {"C": -1}}}, r"substrate\.composition: amount of C must be > 0"),
    ({"clearance_A": {"AuC": 2}}, r"clearance_A: pair 'AuC' must be two element symbols"),
    ({"substrate": {"min_distance_A": {"C": 1.3}}}, r"substrate\.min_distance_A: pair 'C'"),
    ({"particles": [{"defects": {"lamellae": 1, "lamella_count": 0}}]}, r"lamella_count: must be a whole number"),
    ({"particles": [{"diameter_A": {"choice": ["abc", 10]}}]}, r"diameter_A: choices for a number must be finite"),
    ({"particles": [{"material": {"bulk": 5}}]}, r"bulk takes keyword arguments"),
    ({"substrate": {"thickness_A": float("nan")}}, r"substrate\.thickness_A: Input should be a finite number"),
    ({"particles": [{"position_A": [float("inf"), 3]}]}, r"position_A\[0\]: Input should be a finite number"),
    ({"particles": [{"material": "CeO2", "defects": {"twin": 0.5}}]}, r"CeO2 has no twin on \(1, 1, 1\) planes"),
])
def test_bad_recipes_name_the_field(data, message):
    with pytest.raises(NanofindInputError, match=message):
        parse_recipe(data, "r.yaml")


def test_distribution_draws_stay_in_range_and_follow_weights():
    recipe = parse_recipe({
        "particles_per_field": {"choice": [0, 1, 2, 3]},
        "particles": [{"material": {"choice": ["Au", "Pt"], "weights": [3, 1]},
                       "diameter_A": {"uniform": [20, 90]},
                       "shape": {"choice": ["sphere", "decahedron"]},
                       "zone_axis": {"choice": [[1, 1, 0], [1, 0, 0]]},
                       "off_axis_fraction": 0.5}],
    })
    rng = np.random.default_rng(0)
    specs = [sample_scene_spec(recipe, rng) for _ in range(300)]
    counts = [len(s["particles"]) for s in specs]
    assert set(counts) == {0, 1, 2, 3}
    parts = [p for s in specs for p in s["particles"]]
    assert all(20 <= p["diameter_A"] <= 90 for p in parts)
    au = np.mean([p["material"] == "Au" for p in parts])
    assert 0.65 < au < 0.85
    tilted = np.mean([p["tilt_deg"] > 0 for p in parts])
    assert 0.4 < tilted < 0.6
    assert all(p["zone_axis"] == "5fold" for p in parts if p["shape"] == "decahedron")


def test_same_seed_same_scene(recipes_dir):
    recipe = load_recipe(recipes_dir / "twinned_au.yaml")
    a, spec_a = build_scene(recipe, 11)
    b, spec_b = build_scene(recipe, 11)
    c, _ = build_scene(recipe, 12)
    assert spec_a == spec_b
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.numbers, b.numbers)
    for key in ("grain_id", "object_id", "is_particle", "defect"):
        assert np.array_equal(a.arrays[key], b.arrays[key])
    assert not np.array_equal(a.positions[a.numbers == 6], c.positions[c.numbers == 6])


def test_unpackable_density_is_a_field_error():
    recipe = parse_recipe({"substrate": {"density_g_cm3": 6.0, "min_distance_A": 1.5}, "field": {"size_A": [20, 20]}})
    with pytest.raises(NanofindInputError, match="density_g_cm3: density 6.0 g/cm³ cannot be packed"):
        build_scene(recipe, 0)


def test_miller_parsing():
    assert parse_miller("111") == (1, 1, 1)
    assert parse_miller("1-10") == (1, -1, 0)
    assert parse_miller("10-10") == (1, 0, -1, 0)
    assert parse_miller("1 0 -1 0") == (1, 0, -1, 0)
    with pytest.raises(NanofindInputError, match="Miller"):
        parse_miller("abc")


def test_envelope_recipe_covers_materials_and_shapes(recipes_dir):
    recipe = load_recipe(recipes_dir / "mixed_envelope.yaml")
    rng = np.random.default_rng(1)
    parts = [p for _ in range(200) for p in sample_scene_spec(recipe, rng)["particles"]]
    assert {p["material"] for p in parts} == {"Au", "Ag", "Pt", "Pd", "CeO2", "CdSe"}
    assert {p["shape"] for p in parts} == {"sphere", "wulff", "decahedron", "icosahedron"}
    assert any(p["edge_cut"] for p in parts) and any(p["tilt_deg"] > 0 for p in parts)


def test_oxide_and_wurtzite_particles_build_with_clearance():
    from nanofind.scene.neighbours import min_distances_by_pair

    recipe = parse_recipe({
        "field": {"size_A": [90, 90]},
        "substrate": {"thickness_A": 15},
        "particles": [
            {"material": "CeO2", "shape": "wulff", "diameter_A": 30, "zone_axis": [1, 1, 0], "position_A": [25, 45]},
            {"material": "CdSe", "shape": "wulff", "diameter_A": 30, "zone_axis": [2, -1, -1, 0],
             "position_A": [65, 45], "defects": {"intrinsic_fault": 1.0},
             "surface_energies": {"10-10": 1.0, "0001": 1.2}},
        ],
    })
    atoms, spec = build_scene(recipe, 4)
    d = min_distances_by_pair(atoms.positions, atoms.get_chemical_symbols(), lateral_period_A=(90, 90))
    for pair in ("C-Ce", "C-O", "C-Cd", "C-Se"):
        assert d[pair] >= 2.0
    assert d["Cd-Se"] == pytest.approx(2.63, abs=0.02)
    assert spec["particles"][1]["planar_defect"] == "intrinsic"
    flags = atoms.arrays["defect"][atoms.numbers == 48]
    assert np.any(flags & 2)  # stacking-fault layers are flagged


def test_vacancies_and_alloying_from_a_recipe():
    recipe = parse_recipe({"substrate": None, "field": {"size_A": [60, 60]},
                           "particles": [{"diameter_A": 30, "position_A": [30, 30],
                                          "defects": {"vacancy_fraction": 0.1,
                                                      "substitution": {"element": "Ag", "fraction": 0.2}}}]})
    atoms, _ = build_scene(recipe, 0)
    n = len(atoms)
    perfect, _ = build_scene(parse_recipe({"substrate": None, "field": {"size_A": [60, 60]},
                                           "particles": [{"diameter_A": 30, "position_A": [30, 30]}]}), 0)
    assert n == len(perfect) - round(0.1 * len(perfect))  # exactly 10% vacancies
    assert np.sum(atoms.numbers == 47) / n == pytest.approx(0.2, abs=0.04)  # 20% Ag, kept by random removal
    assert atoms.positions[:, 2].min() == pytest.approx(1.0)  # no substrate: rests on z = 1 Å


def test_several_particles_never_overlap(recipes_dir):
    from nanofind.scene.labels import project_labels
    from nanofind.scene.neighbours import pairs_within

    recipe = load_recipe(recipes_dir / "mixed_envelope.yaml")
    checked = 0
    for seed in range(40):
        spec = sample_scene_spec(recipe, np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0]))
        if len(spec["particles"]) < 2 or any(p["touching"] for p in spec["particles"]):
            continue
        atoms, spec = build_scene(recipe, seed)
        obj = atoms.arrays["object_id"]
        part = atoms.arrays["is_particle"]
        ids = sorted(set(obj[part].tolist()))
        if len(ids) < 2:
            continue
        for a in ids:
            for b in ids:
                if a < b:
                    d = pairs_within(atoms.positions[obj == a], 3.0, others=atoms.positions[obj == b])[2]
                    assert len(d) == 0  # no two atoms of different particles within 3 Å
        lx, ly = atoms.cell.lengths()[:2]
        masks = []
        for a in ids:
            sub = atoms[obj == a]
            masks.append(project_labels(sub, (int(ly), int(lx)), 1.0).mask)
        assert np.sum(np.sum(masks, axis=0) > 1) == 0  # footprints do not overlap in projection
        checked += 1
        if checked == 2:
            break
    assert checked == 2


@pytest.mark.parametrize("particles,message", [
    ([{"position_A": [500, 30]}], r"particles\[0\]\.position_A: \(500\.0, 30\.0\) Å lies outside"),
    ([{"material": "Au", "diameter_A": 30, "position_A": [30, 30]},
      {"material": "Pt", "diameter_A": 30, "position_A": [35, 30]}], r"particles\[1\]\.position_A: particle overlaps"),
])
def test_fixed_positions_are_checked(particles, message):
    with pytest.raises(NanofindInputError, match=message):
        build_scene(parse_recipe({"field": {"size_A": [100, 100]}, "substrate": {"thickness_A": 10},
                                  "particles": particles}), 0)


def test_particle_cut_by_the_edge_still_rests_on_the_substrate():
    from nanofind.scene.neighbours import min_distances_by_pair

    atoms, _ = build_scene(parse_recipe({"field": {"size_A": [60, 60]}, "substrate": {"thickness_A": 10},
                                         "particles": [{"diameter_A": 30, "position_A": [1, 30]}]}), 0)
    assert 0 < np.sum(atoms.numbers == 79) < 900
    d = min_distances_by_pair(atoms.positions, atoms.get_chemical_symbols(), lateral_period_A=(60, 60))
    assert d["Au-C"] == pytest.approx(2.0, abs=1e-4)


def test_multiply_twinned_particles_draw_no_extra_planar_defects():
    recipe = parse_recipe({"particles": [{"shape": "icosahedron", "defects": {"twin": 1.0}}]})
    spec = sample_scene_spec(recipe, 0)
    assert spec["particles"][0]["planar_defect"] is None
