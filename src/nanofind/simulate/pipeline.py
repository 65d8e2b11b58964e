"""One scene → several training images with exact ground truth.

Samples are numbered 0, 1, 2, …; sample ``i`` belongs to scene group ``g = i // k`` with
``k = images_per_scene``. Everything random about a sample is seeded from ``(seed, g)`` and its
position in the group, never from the order or the process that computes it, so a dataset is
identical whatever the number of workers.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from scipy.ndimage import binary_closing, binary_fill_holes

from nanofind.datasets.sample import COLUMN_FIELDS, Sample, footprint_facts
from nanofind.scene.build import build_scene
from nanofind.scene.labels import column_positions, project_instances, project_labels
from nanofind.scene.particle_records import particle_records, scene_particle_facts
from nanofind.scene.recipe import FieldSpec, draw
from nanofind.simulate.detector import bin_image, warp, warp_points
from nanofind.simulate.multislice import SubstratePotentialCache, simulate_exit_waves
from nanofind.simulate.optics import image_intensity
from nanofind.simulate.recipe import SimulationRecipe, draw_detector, draw_optics, draw_scene_settings

#: Radius of the closing that joins the above-threshold columns of the phase mask, Å.
CLOSING_RADIUS_A = 2.0
#: Substrate variants per recipe in fast (phase-object) mode when the recipe names no pool: there the
#: carbon packing, not the exit wave, would dominate the cost of a sample.
FAST_MODE_SUBSTRATE_POOL = 8

__all__ = ["COLUMN_FIELDS", "Sample", "group_of", "simulate_group"]


def group_of(index: int, images_per_scene: int) -> tuple[int, int]:
    """(scene group, position in the group) of a sample index."""
    return index // images_per_scene, index % images_per_scene


def _streams(seed: int, group: int, images_per_scene: int):
    root = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(group),))
    settings_ss, scene_ss, wave_ss, substrate_ss, *image_ss = root.spawn(4 + images_per_scene)
    return settings_ss, scene_ss, wave_ss, substrate_ss, image_ss


def _pooled_substrate(recipe: SimulationRecipe, seed: int, rng: np.random.Generator) -> dict | None:
    """A substrate drawn from the recipe's pool of ``substrate_pool`` variants (or None)."""
    pool = recipe.multislice.substrate_pool
    if pool is None and recipe.multislice.mode == "phase_object":
        pool = FAST_MODE_SUBSTRATE_POOL
    if pool is None or recipe.substrate is None:
        return None
    variant = int(rng.integers(pool))
    vrng = np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=(2**31 + variant,)))
    s = recipe.substrate
    return {"composition": dict(s.composition), "thickness_A": float(draw(s.thickness_A, vrng)),
            "density_g_cm3": float(draw(s.density_g_cm3, vrng)), "min_distance_A": s.min_distance_A,
            "seed": int(vrng.integers(2**62)), "pool_variant": variant}


def simulate_group(recipe: SimulationRecipe, seed: int, group: int, positions: list[int] | None = None,
                   cache: SubstratePotentialCache | None = None, recipe_record: dict | None = None) -> list[Sample]:
    """Simulate the images of one scene group.

    Parameters
    ----------
    recipe : SimulationRecipe
        What to simulate.
    seed : int
        Dataset seed.
    group : int
        Scene group; its samples are ``group * k + j`` for the positions ``j``.
    positions : list of int, optional
        Which positions of the group to make (default all ``k``).
    cache : SubstratePotentialCache, optional
        Support potentials kept between groups.
    recipe_record : dict, optional
        The recipe as written by the user, stored in every sample's parameters.

    Returns
    -------
    list of Sample
    """
    k = recipe.images_per_scene
    positions = list(range(k)) if positions is None else sorted(positions)
    settings_ss, scene_ss, wave_ss, substrate_ss, image_ss = _streams(seed, group, k)
    settings = draw_scene_settings(recipe, np.random.default_rng(settings_ss))
    pixel, binning, margin = settings["pixel_size_A"], settings["binning"], settings["margin_px"]
    ny, nx = recipe.detector.shape
    field_A = ((nx + 2 * margin) * pixel, (ny + 2 * margin) * pixel)
    scene_recipe = recipe.model_copy(update={"field": FieldSpec(size_A=field_A, height_A=recipe.field.height_A)})
    scene_seed = int(scene_ss.generate_state(1)[0])
    substrate = _pooled_substrate(recipe, seed, np.random.default_rng(substrate_ss))
    atoms, spec = build_scene(scene_recipe, scene_seed, substrate=substrate)
    gpts = ((nx + 2 * margin) * binning, (ny + 2 * margin) * binning)
    waves = simulate_exit_waves(atoms, settings["energy_eV"], gpts, settings["multislice"],
                                int(wave_ss.generate_state(1)[0]), cache)
    origin = (margin * pixel, margin * pixel)
    radius = recipe.ground_truth.atom_radius_A
    labels = project_labels(atoms, (ny, nx), pixel, origin, atom_radius_A=radius)
    instance = project_instances(atoms, (ny, nx), pixel, origin, atom_radius_A=radius)
    facts = scene_particle_facts(atoms, spec, scene_seed, atom_radius_A=radius)
    mask = labels.mask
    if recipe.ground_truth.mask == "phase":
        mask = _phase_mask(atoms, settings, gpts, recipe.ground_truth.phase_threshold_rad, margin, binning, (ny, nx))
    columns = column_positions(atoms)
    cols = np.column_stack([columns.xy_A - np.asarray(origin), columns.height, columns.grain]).astype(np.float32)
    inside = (cols[:, 0] >= 0) & (cols[:, 0] < nx * pixel) & (cols[:, 1] >= 0) & (cols[:, 1] < ny * pixel)
    cols = cols[inside].reshape(-1, 4)
    crop = (slice(margin * binning, (margin + ny) * binning), slice(margin * binning, (margin + nx) * binning))
    scene_record = {"scene_seed": scene_seed, "spec": spec, "n_atoms": len(atoms),
                    "n_particle_atoms": int(np.count_nonzero(atoms.arrays["is_particle"])),
                    "cell_A": [float(x) for x in atoms.cell.lengths()]}
    samples = []
    for j in positions:
        rng = np.random.default_rng(image_ss[j])
        optics = draw_optics(recipe.microscope, settings["energy_eV"], rng)
        detector = draw_detector(recipe.detector, pixel, rng)
        intensity = image_intensity(waves, optics)[crop]
        displacement = detector.distortion_field((ny, nx), rng)
        image = detector.record(intensity, binning, rng, displacement)
        m, g, h, c, inst = mask, labels.grain, labels.column_height, cols, instance
        if displacement is not None:
            m, g, h, inst = (warp(a, displacement, order=0) for a in (m.astype(np.uint8), labels.grain,
                                                                     labels.column_height, instance))
            rc = warp_points(np.column_stack([c[:, 1] / pixel - 0.5, c[:, 0] / pixel - 0.5]), displacement)
            c = c.copy()
            c[:, 0], c[:, 1] = (rc[:, 1] + 0.5) * pixel, (rc[:, 0] + 0.5) * pixel
        index = group * k + j
        params = {"index": index, "seed": int(seed), "group": group, "position_in_group": j,
                  "pixel_size_A": pixel, "dose_e_per_A2": detector.dose_e_per_A2, "defocus_A": optics.defocus_A,
                  "energy_eV": settings["energy_eV"], "binning": binning, "sampling_A": settings["sampling_A"],
                  "margin_px": margin, "shape": [ny, nx], "optics": optics.to_dict(), "detector": detector.to_dict(),
                  "multislice": settings["multislice"].to_dict(), "tilts_mrad": waves.tilts_mrad,
                  "ground_truth": recipe.ground_truth.model_dump(), "scene": scene_record,
                  "recipe": recipe_record if recipe_record is not None else recipe.model_dump(mode="json")}
        records = particle_records(facts, footprint_facts(inst, pixel))
        json.dumps([params, records])  # every sample's record must be storable
        samples.append(Sample(index, image, np.asarray(m, np.uint8), np.asarray(g, np.int16),
                              np.asarray(h, np.uint16), c, params, np.asarray(inst, np.int32), records))
    return samples


def _phase_mask(atoms, settings: dict, gpts, threshold_rad: float, margin: int, binning: int, shape) -> np.ndarray:
    """Seeds' mask: |phase| of the particle-only static exit wave above ``threshold_rad``."""
    particle = atoms[np.asarray(atoms.arrays["is_particle"], bool)]
    ms = replace(settings["multislice"], frozen_phonons=0, tilt_spread_mrad=0.0)
    wave = simulate_exit_waves(particle, settings["energy_eV"], gpts, ms, 0).array[0].T
    ny, nx = shape
    above = np.abs(np.angle(wave)) > threshold_rad
    # the phase peaks on the columns; closing over the widest column gap turns them into the particle area
    sampling = settings["sampling_A"]
    radius = max(1, int(round(CLOSING_RADIUS_A / sampling)))
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    above = binary_fill_holes(binary_closing(above, structure=(yy**2 + xx**2) <= radius**2, border_value=0))
    above = above[margin * binning:(margin + ny) * binning, margin * binning:(margin + nx) * binning]
    return bin_image(above.astype(np.float32), binning) >= 0.5
