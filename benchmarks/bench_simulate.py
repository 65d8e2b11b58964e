"""Dataset throughput of ``nanofind simulate`` against a plain per-image abTEM loop.

Both make 512 x 512 images at identical physics: the same scenes (default recipe, pixel 0.2 Å,
sampling 0.2 Å, 2 Å slices, Lobato, no frozen phonons), the same optics, on this machine in the
same run. The plain loop does what a user would write: per image, build the potential, run the
multislice, apply the CTF, take the intensity (scene building is not counted for it). nanofind
is timed end to end (scenes, exit waves, optics, detector, ground truth, HDF5) with one worker
per core. The fast (phase-object) mode is timed the same way, and its exit-wave stage, the part
it approximates, is also timed against the multislice on the same scenes in one process. The last
line is JSON with ``ratio``.

    python benchmarks/bench_simulate.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _recipe(mode: str) -> dict:
    raw = yaml.safe_load((ROOT / "examples/recipes/default.yaml").read_text())
    raw["detector"]["pixel_size_A"] = 0.2
    raw["microscope"]["energy_keV"] = 300
    raw["multislice"].update(max_sampling_A=0.2, mode=mode)
    return raw


def _scene(recipe, seed: int, group: int):
    """The atoms, grid points, scene settings and per-image seed streams of one group of nanofind's run."""
    import numpy as np

    from nanofind.scene.build import build_scene
    from nanofind.scene.recipe import FieldSpec
    from nanofind.simulate.pipeline import _streams
    from nanofind.simulate.recipe import draw_scene_settings

    settings_ss, scene_ss, _, _, image_ss = _streams(seed, group, recipe.images_per_scene)
    settings = draw_scene_settings(recipe, np.random.default_rng(settings_ss))
    ny, nx = recipe.detector.shape
    m, p = settings["margin_px"], settings["pixel_size_A"]
    field = FieldSpec(size_A=((nx + 2 * m) * p, (ny + 2 * m) * p))
    atoms, _ = build_scene(recipe.model_copy(update={"field": field}), int(scene_ss.generate_state(1)[0]))
    gpts = ((nx + 2 * m) * settings["binning"], (ny + 2 * m) * settings["binning"])
    return atoms, gpts, settings, image_ss


def plain_abtem_loop(raw: dict, n: int, seed: int) -> float:
    """Seconds per image for the plain loop over the scenes nanofind's run draws."""
    import abtem
    import numpy as np

    from nanofind.simulate.recipe import draw_optics, parse_simulation_recipe

    abtem.config.set({"dask.lazy": False, "diagnostics.progress_bar": False, "fft": "numpy"})
    recipe = parse_simulation_recipe(raw)
    k = recipe.images_per_scene
    spent = 0.0
    for i in range(n):
        g, j = divmod(i, k)
        atoms, (nx, ny), settings, image_ss = _scene(recipe, seed, g)
        optics = draw_optics(recipe.microscope, settings["energy_eV"], np.random.default_rng(image_ss[j]))
        t = time.perf_counter()
        potential = abtem.Potential(atoms, gpts=(nx, ny), slice_thickness=2.0,
                                    parametrization="lobato", projection="infinite")
        waves = abtem.PlaneWave(energy=settings["energy_eV"]).multislice(potential)
        image = waves.apply_ctf(optics.ctf()).intensity()
        np.asarray(image.array)
        spent += time.perf_counter() - t
    return spent / n


def exit_wave_stage(raw: dict, n_scenes: int, seed: int) -> tuple[float, float]:
    """Seconds per scene of the exit-wave step, (multislice, phase object), on the same scenes."""
    from dataclasses import replace

    from nanofind.simulate.multislice import simulate_exit_waves
    from nanofind.simulate.recipe import parse_simulation_recipe

    recipe = parse_simulation_recipe(raw)
    spent = {"multislice": 0.0, "phase_object": 0.0}
    for g in range(n_scenes):
        atoms, gpts, settings, _ = _scene(recipe, seed, g)
        for mode in spent:
            t = time.perf_counter()
            simulate_exit_waves(atoms, settings["energy_eV"], gpts, replace(settings["multislice"], mode=mode), g)
            spent[mode] += time.perf_counter() - t
    return spent["multislice"] / n_scenes, spent["phase_object"] / n_scenes


def nanofind_run(raw: dict, n: int, seed: int, workers: int) -> float:
    """Seconds per image for ``nanofind simulate`` (wall clock, all stages, ``workers`` processes)."""
    from nanofind.datasets.generate import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        generate_dataset(raw, "bench", n, Path(tmp) / "bench.h5", seed, workers=workers, progress=False)
        return (time.perf_counter() - t) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (under 5 minutes)")
    args = parser.parse_args()
    n = 32 if args.quick else 96
    workers = os.cpu_count() or 1
    seed = 2026
    raw = _recipe("multislice")
    ours = nanofind_run(raw, n, seed, workers)
    fast = nanofind_run(_recipe("phase_object"), n, seed, workers)
    plain = plain_abtem_loop(raw, n, seed)
    wave_multislice, wave_fast = exit_wave_stage(raw, n // raw["images_per_scene"], seed)
    result = {"images": n, "shape": [512, 512], "workers": workers, "images_per_scene": raw["images_per_scene"],
              "plain_abtem_s_per_image": round(plain, 3), "nanofind_s_per_image": round(ours, 3),
              "nanofind_fast_s_per_image": round(fast, 3), "fast_speedup": round(ours / fast, 2),
              "exit_wave_multislice_s_per_scene": round(wave_multislice, 3),
              "exit_wave_fast_s_per_scene": round(wave_fast, 3),
              "fast_exit_wave_speedup": round(wave_multislice / wave_fast, 1), "ratio": round(plain / ours, 2)}
    print(f"plain abTEM loop      {plain:.3f} s/image")
    print(f"nanofind multislice   {ours:.3f} s/image ({workers} workers)")
    print(f"nanofind fast mode    {fast:.3f} s/image")
    print(f"exit waves per scene  multislice {wave_multislice:.3f} s, fast {wave_fast:.3f} s "
          f"({wave_multislice / wave_fast:.1f}x)")
    from nanofind.learn.engine import machine_info

    result["machine"] = machine_info()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
