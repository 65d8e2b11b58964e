"""Per-crop work (features, network inputs) of many crops on every CPU this process may use.

A crop's features take a few milliseconds of many small NumPy and SciPy calls, which a second
thread cannot overlap (the interpreter lock), so large batches go to worker processes: joblib's
reusable loky pool, which starts fresh processes (never a fork of this one, whose thread pools a
fork would copy), keeps them between batches and,
unlike :mod:`multiprocessing`, does not run the caller's script again in its workers. On an AMD
EPYC with two vCPUs the features and network inputs took 6.5–6.9 s per 1000 crops on two workers
against 9.8–12.4 s in one process, after a start of 1–2.5 s at the first batch (docs/benchmarks.md,
"Speed: crop work on two processes").

- Batches of fewer than :data:`MIN_CROPS` crops run in this process. ``analyze`` classifies image
  by image, a few particles each, so it keeps to its own process: on 40 HRTEM fields of 1–3
  particles a pool started ahead saved nothing.
- One worker per CPU this process computes on (:func:`nanofind.learn.engine.compute_threads`): a
  process that is itself one of ``--workers N`` local workers has its share only, and with one CPU
  the crops are done here, as in a daemonic process (a Dask worker's, by default).
  ``$NANOFIND_CROP_WORKERS`` replaces that count (``1``: no workers).
- Where no worker can start, one dies or one takes over :data:`TASK_TIMEOUT_S` on a task, the
  crops are done here.

Results are the same numbers in the same order either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

#: Batches smaller than this run in this process: starting the pool costs 1–2.5 s, and two
#: workers save about 4 ms a crop (AMD EPYC, docs/benchmarks.md), so it pays from about 400 crops on.
MIN_CROPS = 400
#: Crops per task sent to a worker.
CHUNK = 32
#: Seconds a worker may take over one task (32 crops take well under one) before the whole batch is
#: done in this process instead: a stuck worker must not stall a command.
TASK_TIMEOUT_S = 120.0
#: Environment variable: worker processes for crop work (``1``: none), replacing the CPU count.
WORKERS_ENV = "NANOFIND_CROP_WORKERS"


def crop_workers() -> int:
    """Worker processes for crop work: ``$NANOFIND_CROP_WORKERS``, else the CPUs this process computes on."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    import multiprocessing

    from nanofind._parallel import available_cpus
    from nanofind.learn.engine import compute_threads

    if multiprocessing.current_process().daemon:  # a daemonic worker (Dask's, by default) may not have children
        return 1
    return max(1, min(compute_threads(), available_cpus()))


def _apply(function: Callable, crops: Sequence) -> list:
    return [function(c) for c in crops]


def map_crops(function: Callable[[np.ndarray], object], crops: Sequence, *, workers: int | None = None) -> list:
    """``[function(c) for c in crops]``, on worker processes for large batches (see the module docstring).

    ``function`` must be a module-level function (it reaches the workers by reference).
    """
    workers = crop_workers() if workers is None else workers
    if workers < 2 or len(crops) < MIN_CROPS:
        return _apply(function, crops)
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import TimeoutError as TaskTimeout  # what joblib raises past its timeout

    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    size = min(CHUNK, -(-len(crops) // workers))
    chunks = [crops[k:k + size] for k in range(0, len(crops), size)]
    try:
        parts = Parallel(n_jobs=workers, backend="loky", timeout=TASK_TIMEOUT_S)(
            delayed(_apply)(function, chunk) for chunk in chunks
        )
    except (TerminatedWorkerError, BrokenProcessPool, OSError, TaskTimeout):  # a worker died, hung or never started
        return _apply(function, crops)
    return [value for part in parts for value in part]
