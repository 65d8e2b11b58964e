import numpy as np
import pytest
from ase.build import bulk

from nanofind.scene.build import build_scene
from nanofind.scene.recipe import parse_recipe
from nanofind.simulate.multislice import MultisliceSettings, SubstratePotentialCache, simulate_exit_waves
from nanofind.simulate.optics import Optics, image_intensity
from nanofind.simulate.pipeline import simulate_group
from nanofind.simulate.recipe import parse_simulation_recipe


def _scene(substrate=True, diameter=14.0, position=(14.0, 20.0)):
    recipe = {"field": {"size_A": [40, 40]}, "particles": [{"material": "Au", "diameter_A": diameter,
                                                             "zone_axis": [1, 1, 0], "position_A": list(position)}]}
    recipe["substrate"] = {"thickness_A": 10} if substrate else None
    return build_scene(parse_recipe(recipe), 0)[0]


def test_vacuum_exit_wave_is_unity():
    atoms = _scene()
    atoms = atoms[[]]
    atoms.cell = [40, 40, 10]
    waves = simulate_exit_waves(atoms, 300e3, (64, 64), MultisliceSettings(), 0)
    assert np.allclose(np.abs(waves.array), 1, atol=1e-5)


def test_cached_support_potential_gives_the_same_wave():
    atoms = _scene()
    cache = SubstratePotentialCache()
    a = simulate_exit_waves(atoms, 300e3, (160, 160), MultisliceSettings(), 0, cache)
    b = simulate_exit_waves(atoms, 300e3, (160, 160), MultisliceSettings(), 0, cache)
    c = simulate_exit_waves(atoms, 300e3, (160, 160), MultisliceSettings(), 0)
    assert cache.hits == 1 and cache.misses == 1
    assert np.array_equal(a.array, b.array)
    assert np.allclose(a.array, c.array, atol=1e-5)


def test_split_potential_equals_whole_scene_potential():
    import abtem

    atoms = _scene()
    whole = abtem.Potential(atoms, gpts=(160, 160), slice_thickness=2.0, projection="infinite").build().array
    ours = simulate_exit_waves(atoms, 300e3, (160, 160), MultisliceSettings(), 0)
    ref = abtem.PlaneWave(energy=300e3, gpts=(160, 160), extent=(40, 40)).multislice(
        abtem.potentials.iam.PotentialArray(whole, slice_thickness=atoms.cell[2, 2] / whole.shape[0],
                                            sampling=(0.25, 0.25)))
    assert np.allclose(ours.array[0], ref.array, atol=2e-4)


def test_contrast_sits_on_the_particle_not_transposed():
    atoms = _scene(substrate=False, position=(12.0, 26.0))
    waves = simulate_exit_waves(atoms, 300e3, (160, 160), MultisliceSettings(), 0)
    image = image_intensity(waves, Optics(300e3, defocus_A=50.0))
    rows, cols = np.nonzero(np.abs(image - 1) > 0.2)
    # rows are y: the particle at x = 12 Å, y = 26 Å (0.25 Å sampling) is at row ~104, column ~48
    assert abs(np.median(cols) * 0.25 - 12.0) < 2 and abs(np.median(rows) * 0.25 - 26.0) < 2


def test_phase_object_agrees_with_multislice_for_a_thin_particle():
    atoms = _scene(substrate=False, diameter=10.0, position=(20.0, 20.0))
    optics = Optics(300e3, defocus_A=-80.0, Cs_A=-1.5e5, aperture_mrad=25)
    ms = image_intensity(simulate_exit_waves(atoms, 300e3, (160, 160), MultisliceSettings(), 0), optics)
    po = image_intensity(simulate_exit_waves(atoms, 300e3, (160, 160), MultisliceSettings(mode="phase_object"), 0),
                         optics)
    r = np.corrcoef(ms.ravel(), po.ravel())[0, 1]
    assert r > 0.9, r
    assert np.abs(ms - po).mean() < 0.25 * np.abs(ms - 1).mean() + 1e-3 or r > 0.97


def test_users_abtem_settings_are_kept_and_do_not_change_the_result():
    import abtem

    atoms = _scene(substrate=False, diameter=8.0, position=(20.0, 20.0))
    optics = Optics(300e3, defocus_A=50.0)
    reference = simulate_exit_waves(atoms, 300e3, (64, 64), MultisliceSettings(), 0)
    reference_image = image_intensity(reference, optics)
    users = {"fft": "fftw", "dask.lazy": True, "precision": "float64"}  # none of them nanofind's
    with abtem.config.set(users):
        waves = simulate_exit_waves(atoms, 300e3, (64, 64), MultisliceSettings(), 0)
        image = image_intensity(waves, optics)
        assert {key: abtem.config.get(key) for key in users} == users
    assert np.array_equal(waves.array, reference.array) and np.array_equal(image, reference_image)


def test_frozen_phonons_displace_by_debye_waller_sigma():
    from nanofind.simulate.multislice import _displaced

    atoms = bulk("Au", cubic=True).repeat((8, 8, 8))
    moved = _displaced(atoms, MultisliceSettings(frozen_phonons=4), 3)
    d = moved.positions - atoms.positions
    assert d.std() == pytest.approx(0.087, rel=0.05)


def _tiny_recipe(**extra):
    raw = {"substrate": {"thickness_A": 8}, "particles": [{"material": "Au", "diameter_A": 16,
                                                            "position_A": [20.0, 14.0]}],
           "detector": {"shape": [64, 64], "pixel_size_A": 0.5, "dose_e_per_A2": "inf"},
           "multislice": {"max_sampling_A": 0.25, "margin_A": 4}, "images_per_scene": 2}
    raw.update(extra)
    return parse_simulation_recipe(raw)


def test_mask_agrees_with_projected_atoms():
    s = simulate_group(_tiny_recipe(), seed=1, group=0)[0]
    margin = s.params["margin_px"] * 0.5
    cols = s.columns
    assert len(cols) > 20
    rc = np.floor(cols[:, [1, 0]] / 0.5).astype(int)
    assert s.mask[rc[:, 0], rc[:, 1]].all()  # every column pixel is inside the mask
    # footprint area ≈ projected disc of the particle (diameter 16 Å) grown by the 1.5 Å atom radius
    area = s.mask.sum() * 0.25
    assert area == pytest.approx(np.pi * (8 + 1.2) ** 2, rel=0.25)
    # the centroid of the mask is where the recipe put the particle (field origin shifted by the margin)
    r, c = np.nonzero(s.mask)
    assert abs((c.mean() + 0.5) * 0.5 + margin - 20.0) < 1.0 and abs((r.mean() + 0.5) * 0.5 + margin - 14.0) < 1.0


def test_phase_mask_option_marks_the_particle():
    s = simulate_group(_tiny_recipe(ground_truth={"mask": "phase"}), seed=1, group=0)[0]
    f = simulate_group(_tiny_recipe(), seed=1, group=0)[0]
    overlap = (s.mask & f.mask).sum() / max(f.mask.sum(), 1)
    assert s.mask.sum() > 0 and overlap > 0.6


def test_group_is_deterministic_and_records_parameters():
    a = simulate_group(_tiny_recipe(), seed=5, group=3, positions=[1])
    b = simulate_group(_tiny_recipe(), seed=5, group=3)
    assert np.array_equal(a[0].image, b[1].image)
    p = a[0].params
    assert p["index"] == 7 and p["seed"] == 5 and p["pixel_size_A"] == 0.5
    assert {"optics", "detector", "scene", "recipe", "multislice"} <= set(p)
