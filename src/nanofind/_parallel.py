"""One runner for independent tasks: in this process, on local worker processes, or on a Dask cluster.

``nanofind simulate``, ``analyze`` and ``segment`` all cut their work into independent tasks (a scene
group, a micrograph file) and hand them to :func:`run_tasks`, which yields each result as its task
finishes. Callers that need a fixed order put the results back by task index, so that what they
write never depends on the number of workers or on which task finished first.

- ``workers == 1`` and no scheduler: the tasks run one after the other in this process.
- ``workers > 1``: freshly spawned local processes (never forked: a fork would copy this process's
  thread pools and open files). Each worker gets ``threads_per_worker`` compute threads (default: the
  CPUs divided among the workers), set before NumPy, PyTorch or ONNX Runtime start their pools. Workers
  end with the process that started them, even when it is killed with SIGKILL.
- ``scheduler``: a Dask distributed scheduler's address (``tcp://host:8786``) or a connected
  ``distributed.Client``; Dask's workers run the tasks. Tasks and results travel by pickle between this
  process and the workers, which run the same nanofind version; files that tasks read or write must be
  on a file system those workers share.

State that is costly to build and the same for many tasks (a parsed recipe, a loaded network) is kept
once per process with :func:`cached_in_process`, keyed by the settings it was built from.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from nanofind.errors import NanofindInputError

#: Environment variables that size the thread pools of OpenMP, BLAS, NumPy's helpers and PyTorch.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
              "NUMEXPR_NUM_THREADS")

_STATE: dict[str, tuple[Any, Any]] = {}
_STATE_LOCK = threading.Lock()


def available_cpus() -> int:
    """CPUs this process may run on (its affinity where the system tells, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_for(workers: int) -> int:
    """Compute threads each of ``workers`` local workers gets: the CPUs shared out, at least one."""
    return max(1, available_cpus() // max(1, workers))


def cached_in_process(slot: str, key: Any, make: Callable[[], Any]) -> Any:
    """The object kept in ``slot`` of this process if it was made for ``key``, else ``make()`` (kept instead).

    One object per slot, so a process that moves on to other settings frees the old one. Threads of
    one process (a Dask worker) share it; it is made once even when several ask at the same time.
    """
    with _STATE_LOCK:
        held = _STATE.get(slot)
        if held is not None and held[0] == key:
            return held[1]
        _STATE.pop(slot, None)  # free the old object before making the new one
        value = make()
        _STATE[slot] = (key, value)
        return value


def forget_in_process(slot: str) -> None:
    """Drop what :func:`cached_in_process` keeps in ``slot`` of this process."""
    with _STATE_LOCK:
        _STATE.pop(slot, None)


def describe_scheduler(scheduler: Any) -> str | None:
    """The address of a scheduler given as an address or a ``distributed.Client`` (for records), or None."""
    if scheduler is None or isinstance(scheduler, str):
        return scheduler
    address = getattr(getattr(scheduler, "scheduler", None), "address", None)
    return str(address or getattr(scheduler, "scheduler_address", None) or scheduler)


def run_tasks(function: Callable[..., Any], tasks: Sequence[tuple], *, workers: int | None = None,
              scheduler: Any = None, threads_per_worker: int | None = None, max_pending_per_worker: int = 2,
              return_exceptions: bool = False, connect_timeout_s: float = 10.0) -> Iterator[tuple[int, Any]]:
    """Run ``function(*task)`` for every task; yield ``(task_index, result)`` as each finishes, in any order.

    Parameters
    ----------
    function : callable
        A module-level function (it is pickled by reference to reach worker processes).
    tasks : sequence of tuples
        Positional arguments of each call; they and the results must pickle when not run here.
    workers : int, optional
        Local worker processes (default: one per CPU); 1 runs the tasks in this process. Never more
        workers than tasks are started. Ignored with ``scheduler``.
    scheduler : str or distributed.Client, optional
        Run on a Dask cluster instead: ``tcp://host:port`` of its scheduler, or a connected client
        (left open).
    threads_per_worker : int, optional
        Compute threads of each local worker process (default :func:`threads_for`).
    max_pending_per_worker : int
        Tasks handed to the local pool per worker at a time: enough that none idles, few enough that
        finished results do not pile up in memory.
    return_exceptions : bool
        Yield a task's exception as its result instead of raising it (the remaining tasks still run).
    connect_timeout_s : float
        How long to try to reach ``scheduler``, s.

    Raises
    ------
    NanofindInputError
        ``workers`` below 1, or a scheduler that cannot be reached (one line, naming ``--scheduler``).
    """
    if workers is not None and workers < 1:
        raise NanofindInputError(f"must be >= 1, got {workers}", "--workers")
    if not tasks:
        return
    if scheduler is not None:
        yield from _run_dask(function, tasks, scheduler, return_exceptions, connect_timeout_s)
        return
    workers = min(workers or available_cpus(), len(tasks))
    if workers == 1:
        for index, task in enumerate(tasks):
            yield index, _call(function, task, return_exceptions)
        return
    yield from _run_local(function, tasks, workers, threads_per_worker or threads_for(workers),
                          max(1, max_pending_per_worker), return_exceptions)


def _call(function, task, return_exceptions):
    if not return_exceptions:
        return function(*task)
    try:
        return function(*task)
    except Exception as exc:
        return exc


def _run_local(function, tasks, workers, threads, max_pending, return_exceptions):
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_start_worker, initargs=(os.getpid(), threads))
    pending: dict = {}
    finished_all = False
    try:
        queue = iter(enumerate(tasks))
        exhausted = False
        while True:
            while not exhausted and len(pending) < max_pending * workers:
                item = next(queue, None)
                if item is None:
                    exhausted = True
                    break
                pending[pool.submit(function, *item[1])] = item[0]
            if not pending:
                finished_all = True
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index = pending.pop(future)
                error = future.exception()
                if error is None:
                    yield index, future.result()
                elif return_exceptions and isinstance(error, Exception):
                    yield index, error
                else:
                    raise error
    finally:
        # Done: the workers exit (unloading their libraries takes a while) as the caller goes on writing.
        # Stopped early (an error, an interrupt, the caller broke off): queued tasks are dropped, and the
        # workers are waited for.
        pool.shutdown(wait=not finished_all, cancel_futures=not finished_all)


def _start_worker(parent_pid: int, threads: int) -> None:
    """Local worker initializer: size the thread pools, and end with the process that started this one."""
    # before NumPy, PyTorch or ONNX Runtime are imported by the first task, which read these once
    os.environ.update({name: str(threads) for name in THREAD_ENV})
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)

    def watch():  # polled by pid, which also holds for workers that are not the parent's own children
        while True:
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # pid taken over by another user's process: the parent is gone
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True, name="nanofind-exit-with-parent").start()


#: Tries at starting a Dask client whose event loop did not come up in time.
CLIENT_START_ATTEMPTS = 3


def _connect(scheduler, timeout_s: float):
    """A client for ``scheduler`` and whether this call opened it (and so must close it)."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a dependency
        raise NanofindInputError("needs dask.distributed installed", "--scheduler") from None
    if not isinstance(scheduler, str):
        return scheduler, False
    for attempt in range(CLIENT_START_ATTEMPTS):
        try:
            return Client(scheduler, timeout=f"{timeout_s}s"), True
        except AssertionError:
            # distributed gives the client's event-loop thread 10 s to start and asserts that it did; on a
            # loaded machine (a CI run on 2 cores) that wait has run out, and a second start went through
            if attempt == CLIENT_START_ATTEMPTS - 1:
                raise NanofindInputError(f"cannot connect to {scheduler} (the Dask client's event loop did not "
                                         f"start in {CLIENT_START_ATTEMPTS} tries)", "--scheduler") from None
        except (OSError, TimeoutError, ValueError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise NanofindInputError(f"cannot connect to {scheduler} ({message})", "--scheduler") from None


def _run_dask(function, tasks, scheduler, return_exceptions, timeout_s):
    from distributed import as_completed

    client, opened = _connect(scheduler, timeout_s)
    try:
        # pure=False: equal arguments are still separate tasks (each must run, and write its files)
        futures = {client.submit(function, *task, pure=False): index for index, task in enumerate(tasks)}
        try:
            for future in as_completed(futures):
                # dropped from the dict, the last reference goes and the cluster frees the result
                index = futures.pop(future)
                if return_exceptions and future.status == "error":
                    error = future.exception()
                    if isinstance(error, Exception):
                        yield index, error
                        continue
                yield index, future.result()
        finally:
            for future in futures:  # stopped early: the tasks not yet finished are dropped
                future.cancel()
    finally:
        if opened:
            client.close()
