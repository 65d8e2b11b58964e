"""Low-magnification bright-field image model, its recipes and samples, and `nanofind simulate` with them."""

import math

import numpy as np
import pytest
import yaml

from nanofind.datasets import DatasetReader
from nanofind.errors import NanofindInputError
from nanofind.scene.distributions import choice_options, draw
from nanofind.simulate.brightfield import (
    MATERIALS,
    BrightFieldOptics,
    Camera,
    bright_field_image,
    exit_wave,
    interaction_constant,
)
from nanofind.simulate.brightfield_recipe import make_bright_field_sample, margin_px
from nanofind.simulate.particle_field import make_solid, projected_thickness
from nanofind.simulate.recipe import load_simulation_recipe, parse_any_simulation_recipe

NOISE_FREE = Camera(dose_e_per_A2=math.inf, blur_px=0.0)
TINY = {"kind": "bright_field", "size_px": 64,
        "scale": {"median_diameter_nm": 5, "median_diameter_px": 12, "size_sigma": 0.1},
        "particles": {"shapes": {"choice": ["sphere", "cube"]}, "materials": "Au"},
        "arrangement": {"mode": {"choice": ["isolated", "agglomerates"]}, "coverage": 0.15},
        "detector": {"electrons_per_pixel": 50}}


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_interaction_constant_has_its_tabulated_values():
    # Kirkland, Advanced Computing in Electron Microscopy: σ = 7.2884e-4 (200 kV), 6.5262e-4 (300 kV) rad/(V·Å)
    assert interaction_constant(200e3) == pytest.approx(7.2884e-4, rel=1e-3)
    assert interaction_constant(300e3) == pytest.approx(6.5262e-4, rel=1e-3)


def test_transmission_of_gold_particle_and_carbon_film_is_in_the_calibrated_range():
    gold = np.abs(exit_wave({"Au": np.full((4, 4), 100.0, np.float32)}, 200e3)) ** 2
    carbon = np.abs(exit_wave({"C": np.full((4, 4), 200.0, np.float32)}, 200e3)) ** 2
    assert 0.5 <= gold.mean() <= 0.7 and 0.90 <= carbon.mean() <= 0.97
    doubled = np.abs(exit_wave({"Au": np.full((4, 4), 100.0, np.float32)}, 200e3, aperture_contrast=2.0)) ** 2
    assert doubled.mean() == pytest.approx(gold.mean() ** 2, rel=1e-5)  # the factor scales the exponent


def test_amplitude_contrast_grows_with_mass_thickness():
    optics = BrightFieldOptics(defocus_A=0.0, Cs_A=0.0)
    thickness = np.repeat(np.array([0, 20, 50, 100, 200, 400], np.float32), 16)[None, :].repeat(96, 0)
    image = bright_field_image({"Au": thickness}, 5.0, optics, NOISE_FREE, _rng())
    levels = image[:, 8::16].mean(axis=0)  # middle of each band
    assert np.all(np.diff(levels) < 0) and levels[0] == pytest.approx(1.0, abs=1e-3)
    # at equal thickness, heavier and denser material is darker
    uniform = np.full((32, 32), 100.0, np.float32)
    order = [bright_field_image({m: uniform}, 5.0, optics, NOISE_FREE, _rng()).mean() for m in ("Au", "Ag", "Cu",
                                                                                                "SiO2")]
    assert order == sorted(order)


def test_vacuum_in_a_hole_is_brighter_than_the_film():
    film = np.full((128, 128), 300.0, np.float32)
    rows, cols = np.mgrid[0:128, 0:128]
    hole = np.hypot(rows - 64, cols - 64) < 30
    film[hole] = 0
    optics = BrightFieldOptics(defocus_A=5000.0)
    camera = Camera(dose_e_per_A2=2.0, blur_px=0.7)
    image = bright_field_image({"C": film}, 5.0, optics, camera, _rng(1))
    inner = np.hypot(rows - 64, cols - 64) < 20
    outer = np.hypot(rows - 64, cols - 64) > 40
    assert image[inner].mean() > image[outer].mean() * 1.02


@pytest.mark.parametrize("defocus_A, outside_brighter", [(5000.0, True), (-5000.0, False)])
def test_defocus_sign_underfocus_puts_a_bright_fringe_outside_a_particle(defocus_A, outside_brighter):
    # a pure phase disc (no scattering out of the aperture): in focus it is invisible; underfocused
    # (Δf > 0) the Fresnel fringe just outside its edge is bright, overfocused it is dark
    disc = projected_thickness(make_solid("rod", 40.0, aspect=0.5), (128.0, 128.0), (256, 256))
    radius = math.sqrt((disc > 0).sum() / math.pi)
    thickness = {"SiO2": disc * 2.0}  # 2 Å per pixel
    coherent = {"Cs_A": 0.0, "aperture_contrast": 0.0, "illumination_semiangle_mrad": 0.0, "focal_spread_A": 0.0}
    in_focus = bright_field_image(thickness, 2.0, BrightFieldOptics(defocus_A=0.0, **coherent), NOISE_FREE, _rng())
    assert np.allclose(in_focus, 1.0, atol=1e-4)
    optics = BrightFieldOptics(defocus_A=defocus_A, **coherent)
    image = bright_field_image(thickness, 2.0, optics, NOISE_FREE, _rng())
    r = np.hypot(*(np.mgrid[0:256, 0:256] + 0.5 - 128.0))
    fringe = image[(r > radius + 0.5) & (r < radius + 3)].mean()
    assert (fringe > 1.0) == outside_brighter and abs(fringe - 1.0) > 0.01
    assert image[r > radius + 40].mean() == pytest.approx(1.0, abs=0.01)


def test_propagation_without_envelopes_keeps_the_electrons():
    t = projected_thickness(make_solid("sphere", 30.0), (32.0, 40.0), (96, 96)) * 4.0
    optics = BrightFieldOptics(defocus_A=2e4, illumination_semiangle_mrad=0.0, focal_spread_A=0.0)
    wave = exit_wave({"Au": t}, optics.energy_eV)
    image = bright_field_image({"Au": t}, 4.0, optics, NOISE_FREE, _rng())
    assert image.mean() == pytest.approx(float(np.mean(np.abs(wave) ** 2)), rel=1e-4)


def test_shot_noise_is_poisson_at_the_given_dose():
    vacuum = {"C": np.zeros((160, 160), np.float32)}
    electrons = 40.0  # per 5 Å pixel: dose 1.6 e/Å²
    camera = Camera(dose_e_per_A2=electrons / 25.0, blur_px=0.0)
    image = bright_field_image(vacuum, 5.0, BrightFieldOptics(), camera, _rng(2)).astype(float)
    assert image.mean() == pytest.approx(electrons, rel=0.02) and image.var() == pytest.approx(electrons, rel=0.06)
    scaled = Camera(dose_e_per_A2=electrons / 25.0, blur_px=0.0, gain=3.0, offset=100.0)
    counts = bright_field_image(vacuum, 5.0, BrightFieldOptics(), scaled, _rng(3)).astype(float)
    assert counts.mean() == pytest.approx(3 * electrons + 100, rel=0.02)
    assert counts.var() == pytest.approx(9 * electrons, rel=0.06)
    blurred = bright_field_image(vacuum, 5.0, BrightFieldOptics(), Camera(dose_e_per_A2=electrons / 25, blur_px=1.0),
                                 _rng(4))
    assert blurred.mean() == pytest.approx(electrons, rel=0.02) and blurred.var() < 0.3 * electrons


def test_the_margin_keeps_fft_wrap_out_of_the_image():
    optics = BrightFieldOptics(defocus_A=2e4, illumination_semiangle_mrad=0.05)
    margin = margin_px(optics, 0.0, 5.0, (64, 64))
    shape = (64 + 2 * margin, 64 + 2 * margin)
    crop = (slice(margin, margin + 64), slice(margin, margin + 64))
    film = np.full(shape, 200.0, np.float32)
    clean = bright_field_image({"C": film}, 5.0, optics, NOISE_FREE, _rng(), crop=crop)
    block = np.zeros(shape, np.float32)
    block[:, :6] = 300.0  # a gold wall at the far left of the padded grid, a margin away from the image
    walled = bright_field_image({"C": film, "Au": block}, 5.0, optics, NOISE_FREE, _rng(), crop=crop)
    assert np.abs(walled - clean).max() < 0.01  # neither its near side nor its wrapped far side reaches the image


def test_sample_is_reproducible_and_consistent():
    recipe = parse_any_simulation_recipe(TINY)
    a, b = make_bright_field_sample(recipe, 3, 5), make_bright_field_sample(recipe, 3, 5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.instance, b.instance) and a.params == b.params
    assert not np.array_equal(a.image, make_bright_field_sample(recipe, 3, 6).image)
    for s in (a, make_bright_field_sample(recipe, 3, 7)):
        assert s.image.dtype == np.float32 and s.image.shape == (64, 64)
        assert np.array_equal(s.mask, s.instance > 0)
        ids = [r["id"] for r in s.particles]
        assert ids == list(range(1, s.instance.max() + 1)) == sorted(np.unique(s.instance[s.instance > 0]).tolist())
        assert s.grain.dtype == np.int16 and np.all(s.grain == -1) and not s.column_height.any()
        assert s.columns.shape == (0, 4) and s.params["kind"] == "bright_field"


def test_pinned_median_diameter_sets_the_pixel_size_within_its_range():
    recipe = parse_any_simulation_recipe(TINY)
    s = make_bright_field_sample(recipe, 0, 0)
    assert s.params["pixel_size_A"] == pytest.approx(5 * 10 / 12)
    assert s.params["median_diameter_px"] == pytest.approx(12)
    big = parse_any_simulation_recipe({**TINY, "scale": {"median_diameter_nm": 100, "median_diameter_px": 10}})
    s = make_bright_field_sample(big, 0, 0)
    assert s.params["pixel_size_A"] == 50.0 and s.params["median_diameter_px"] == pytest.approx(20.0)


def test_particle_records_describe_the_spheres_seen():
    raw = {**TINY, "size_px": 128, "particles": {"shapes": "sphere", "materials": "Ag"},
           "scale": {"median_diameter_nm": 6, "median_diameter_px": 20, "size_sigma": 0.0},
           "arrangement": {"mode": "isolated", "coverage": 0.1}}
    s = make_bright_field_sample(parse_any_simulation_recipe(raw), 1, 0)
    whole = [r for r in s.particles if not r["cut_by_edge"]]
    assert whole and len(s.particles) == s.instance.max()
    for r in s.particles:
        assert r["source"] == "scene" and r["shape"] == "sphere" and r["material"] == "Ag"
        assert r["volume_equivalent_diameter_nm"] == pytest.approx(6.0)
    for r in whole:  # a sphere's footprint is a disc of its diameter
        assert r["equivalent_diameter_nm"] == pytest.approx(6.0, abs=0.3)
        assert not r["touching"]


@pytest.mark.parametrize("change, message", [
    ({"scale": {"median_diameter_px": 10, "pixel_size_A": 2}}, r"scale: give exactly one of"),
    ({"particles": {"shapes": {"choice": ["sphere", "blob"]}}}, r"particles\.shapes: unknown shape 'blob'"),
    ({"particles": {"materials": "C"}}, r"particles\.materials: unknown particle material 'C'"),
    ({"arrangement": {"coverage": 1.5}}, r"arrangement\.coverage: must be in \[0, 1\]"),
    ({"kind": "cryo"}, r"kind: must be hrtem or bright_field"),
    ({"detector": {"electrons_per_pixel": 5, "dose_e_per_A2": 1}}, r"detector: give electrons_per_pixel or"),
])
def test_bad_recipes_are_one_clear_error(change, message):
    with pytest.raises(NanofindInputError, match=message):
        parse_any_simulation_recipe({**TINY, **change}, "r.yaml")


def test_test_recipe_differs_from_the_training_recipe(recipes_dir):
    train, _ = load_simulation_recipe(recipes_dir / "lowmag-train.yaml")
    test, _ = load_simulation_recipe(recipes_dir / "lowmag-test.yaml")
    assert set(choice_options(test.particles.shapes)) - set(choice_options(train.particles.shapes))
    assert set(choice_options(test.particles.materials)) - set(choice_options(train.particles.materials))
    rng = np.random.default_rng(0)

    def mean_coverage(recipe):
        a = recipe.arrangement
        return np.mean([draw(a.monolayer_coverage if draw(a.mode, rng) == "monolayer" else a.coverage, rng)
                        for _ in range(2000)])

    assert mean_coverage(test) > 1.3 * mean_coverage(train)  # a denser regime


def test_simulate_command_writes_a_trainable_dataset(tmp_path):
    from nanofind.cli import main
    from nanofind.learn.data import load_dataset

    recipe_path = tmp_path / "lowmag.yaml"
    recipe_path.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "lowmag.h5"
    assert main(["simulate", str(recipe_path), "-n", "3", "-o", str(out), "--seed", "9", "--workers", "2",
                 "--quiet"]) == 0
    items = load_dataset(out)
    assert len(items) == 3
    recipe, raw = load_simulation_recipe(recipe_path)
    with DatasetReader(out) as reader:
        for k, item in enumerate(items):
            assert item.instance is not None and np.array_equal(item.mask, (item.instance > 0).astype(np.uint8))
            assert item.pixel_size_A == pytest.approx(5 * 10 / 12)
            stored, direct = reader.sample(k), make_bright_field_sample(recipe, 9, k, raw)
            assert np.array_equal(stored.image, direct.image) and stored.particles == direct.particles


def test_materials_table_covers_the_documented_set():
    assert set(MATERIALS) == {"Au", "Ag", "Pt", "Pd", "Cu", "Fe3O4", "CeO2", "TiO2", "SiO2", "ZnO", "Al2O3",
                              "polystyrene", "C"}


def test_scattering_per_mass_follows_z_to_the_one_and_a_half_over_mass_of_each_formula():
    from ase.data import atomic_masses, atomic_numbers
    from ase.formula import Formula

    from nanofind.simulate.brightfield import FORMULAS

    def z_power_per_mass(name):
        counts = Formula(FORMULAS.get(name, name)).count()
        return (sum(n * atomic_numbers[e] ** 1.5 for e, n in counts.items())
                / sum(n * atomic_masses[atomic_numbers[e]] for e, n in counts.items()))

    gold = MATERIALS["Au"].scattering_per_g_cm3_A / z_power_per_mass("Au")
    for name, material in MATERIALS.items():
        assert material.scattering_per_g_cm3_A == pytest.approx(gold * z_power_per_mass(name), rel=0.005), name
