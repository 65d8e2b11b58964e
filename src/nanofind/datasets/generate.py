"""Generate a dataset on local worker processes or a Dask cluster, with progress and resume.

Work is cut into scene groups (one scene's exit waves serve ``images_per_scene`` images). Each
worker is a single-threaded process, one per core by default: the multislice is FFT-bound and
parallelises best across images, not within one. The main process alone writes files.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from nanofind._parallel import cached_in_process, run_tasks
from nanofind._progress import ProgressBar
from nanofind.datasets.sample import Sample
from nanofind.datasets.store import consolidate, existing_indices, parts_dir, run_header, write_part
from nanofind.errors import NanofindInputError
from nanofind.simulate.multislice import SubstratePotentialCache
from nanofind.simulate.pipeline import simulate_group
from nanofind.simulate.recipe import parse_any_simulation_recipe


def _run_group(recipe_record: dict, seed: int, group: int, positions: list[int]) -> tuple[int, list[Sample]]:
    """Worker entry point: simulate one group (recipe parsed and caches kept once per process)."""
    bright_field = recipe_record.get("kind") == "bright_field"
    recipe, cache = cached_in_process(
        "simulation", repr(sorted(recipe_record.items(), key=str)),
        lambda: (parse_any_simulation_recipe(recipe_record), None if bright_field else SubstratePotentialCache()))
    if bright_field:  # one image per field: sample index = group
        from nanofind.simulate.brightfield_recipe import make_bright_field_sample

        k = recipe.images_per_scene
        return group, [make_bright_field_sample(recipe, seed, group * k + j, recipe_record) for j in positions]
    samples = simulate_group(recipe, seed, group, positions, cache, recipe_record)
    return group, samples


@dataclass
class RunReport:
    """What a generation run did."""

    path: Path
    n_samples: int
    made: int
    reused: int
    seconds: float


def plan(n: int, images_per_scene: int, done: set[int]) -> list[tuple[int, list[int]]]:
    """Scene groups with the positions still to make, for samples 0…n−1."""
    work = []
    for g in range(math.ceil(n / images_per_scene)):
        pos = [j for j in range(images_per_scene) if g * images_per_scene + j < n
               and g * images_per_scene + j not in done]
        if pos:
            work.append((g, pos))
    return work


def generate_dataset(recipe_record: dict, recipe_source: str, n: int, out: str | Path, seed: int,
                     workers: int | None = None, resume: bool = False, scheduler: str | None = None,
                     progress: bool = True) -> RunReport:
    """Make samples 0…n−1 of a recipe into ``out`` (HDF5), resuming or refusing to overwrite.

    Parameters
    ----------
    recipe_record : dict
        The recipe mapping as read from YAML (validated here; stored with every sample).
    recipe_source : str
        Where it came from (for messages and the file header).
    n : int
        Number of samples.
    out : path
        Output ``.h5`` file.
    seed : int
        Dataset seed; sample ``i`` depends only on (seed, i).
    workers : int, optional
        Local single-threaded worker processes (default: one per core).
    resume : bool
        Continue a run that was interrupted (or extend a finished one to ``n``).
    scheduler : str, optional
        ``tcp://host:port`` of a Dask scheduler; the workers there do the simulation.
    progress : bool
        Show a progress bar with an ETA on stderr.
    """
    recipe = parse_any_simulation_recipe(recipe_record, recipe_source)
    out = Path(out)
    if n < 1:
        raise NanofindInputError(f"-n must be >= 1, got {n}")
    if seed < 0:
        raise NanofindInputError(f"--seed must be >= 0, got {seed}")
    if not out.parent.exists() or not os.access(out.parent, os.W_OK):
        raise NanofindInputError(f"{out}: cannot write there (directory missing or read-only)")
    header = run_header(recipe_record, recipe_source, seed, recipe.images_per_scene)
    if (out.exists() or parts_dir(out).exists()) and not resume:
        raise NanofindInputError(f"{out}: already exists (use --resume to continue it, or remove it)")
    done = existing_indices(out, header) if resume else set()
    if resume and out.is_file() and any(i >= n for i in done) and not parts_dir(out).exists():
        raise NanofindInputError(f"{out}: already holds more than {n} samples")
    work = plan(n, recipe.images_per_scene, done)
    start = time.perf_counter()
    bar = ProgressBar("simulating", n, len([i for i in done if i < n]), progress)
    made = 0
    try:
        for group, samples in _execute(work, recipe_record, seed, workers, scheduler):
            try:
                write_part(out, group, samples, header)
            except OSError as exc:
                raise NanofindInputError(f"{out}: cannot write ({exc.strerror or exc}); "
                                         "samples written so far are kept, rerun with --resume") from None
            made += len(samples)
            bar.advance(len(samples))
    finally:
        bar.close()
    try:
        consolidate(out, n, header)
    except OSError as exc:
        raise NanofindInputError(f"{out}: cannot write ({exc.strerror or exc}); "
                                 "samples written so far are kept, rerun with --resume") from None
    return RunReport(out, n, made, len([i for i in done if i < n]), time.perf_counter() - start)


def _execute(work, recipe_record, seed, workers, scheduler):
    """Yield (group, samples) as groups finish, in any order.

    Local workers are single-threaded whatever their number: the multislice is FFT-bound and
    parallelises best across images, not within one.
    """
    tasks = [(recipe_record, seed, group, positions) for group, positions in work]
    for _, result in run_tasks(_run_group, tasks, workers=workers, scheduler=scheduler, threads_per_worker=1):
        yield result
