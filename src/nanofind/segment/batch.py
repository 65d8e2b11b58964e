"""The batch machinery that ``nanofind segment`` and ``nanofind analyze`` share.

:func:`segment_batch` takes micrograph files and folders and, for every file: reads it (every frame of
a stack), checks each frame's resampling against the memory limit
(:func:`~nanofind.learn.scale_guard.plan_scale`), predicts its particle probability with the model, and
hands the frame to the command's ``frame_function`` (write a mask; or measure particles and draw an
overlay). One bad file never stops a batch: it comes back with its error instead of frames.

Files are independent tasks for :func:`nanofind._parallel.run_tasks`: in this process
(``workers=1``, the default: the network then uses every core itself), on local worker processes, or
on a Dask cluster. The network is loaded once per process. Workers write each file's own outputs
themselves (so with ``scheduler`` the inputs and the output folder must be on a file system the Dask
workers share, as for ``nanofind simulate``) and return what the frame function returns; the results
are put back into input order, so nothing the caller writes from them depends on the number of
workers or on which file finished first. One caveat: a local worker's network runs on fewer threads,
which sums the same products in another order, so probabilities may differ in their last bits
(measured: 3e-11 at one pixel of 37 000); masks and particle tables are the same unless a pixel lies
that close to the threshold.

With ``records``, each finished file's results are kept (``<folder>/<hash>.json``, with the file's size,
time and the settings that made them), and a resumed batch takes them from there instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nanofind._files import write_text_atomic
from nanofind._parallel import (
    available_cpus,
    cached_in_process,
    describe_scheduler,
    forget_in_process,
    run_tasks,
    threads_for,
)
from nanofind._progress import ProgressBar
from nanofind.errors import NanofindInputError
from nanofind.io.annotations import find_annotations
from nanofind.io.micrograph import SUFFIXES, Micrograph, read_micrograph
from nanofind.learn.card import ModelCard
from nanofind.learn.scale_guard import MEMORY_LIMIT_GB, ScalePlan, max_image_pixels, plan_scale
from nanofind.segment.inference import BATCH, WINDOW_PX, predict_probability

#: Where :func:`cached_in_process` keeps a process's loaded network.
_RUNNER_SLOT = "segmentation-runner"
#: Smallest memory limit one process can work within, GB (as ``--max-memory``'s lower bound).
MIN_MEMORY_GB = 1.0


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files named directly, plus the micrographs directly inside named directories (sorted).

    Ground-truth images beside examples (``<stem>_truth.*``) are left out of directories.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix.lower() in SUFFIXES and not p.stem.endswith("_truth")))
        else:
            files.append(path)
    return files


@dataclass(frozen=True)
class ModelChoice:
    """Which network runs, and how (see :func:`nanofind.learn.engine.load_runner`)."""

    model: str = "auto"  #: 'auto' (a shipped model per image), 'hrtem' (= 'default'), 'lowmag', or a directory
    precision: str = "auto"
    backend: str = "auto"
    warm_up_px: int | None = WINDOW_PX


@dataclass(frozen=True)
class FrameInput:
    """One 2D frame, segmented: what a batch's ``frame_function`` receives."""

    path: Path  #: the file, as named by the caller
    frame: Micrograph  #: the 2D frame (its ``name`` names outputs; ``metadata["frame"]`` its index, or None)
    plan: ScalePlan  #: its checked resampling; ``plan.warnings`` are the caller's to report
    probability: Any  #: particle probability, float32 array on the frame's own grid
    started_s: float  #: ``time.perf_counter()`` when work on the frame began (for per-image times)
    #: which model segmented it and why (:class:`~nanofind.segment.model_choice.ModelDecision` record)
    decision: dict | None = None
    #: burned-in annotations left out of ``frame`` (:class:`~nanofind.io.annotations.Annotations`; the
    #: probability is zero on them) and the frame as read, for display; None when there were none
    annotations: Any = None
    original: Any = None

    @property
    def index(self) -> int | None:
        """The frame's number in its stack, or None for a 2D image."""
        return self.frame.metadata.get("frame")


@dataclass
class FileResult:
    """What became of one input file: its frames' results, or the error that stopped it."""

    path: Path
    frames: list = field(default_factory=list)  #: the frame function's results, in frame order
    error: str | None = None  #: one line; None when the file was done
    engine: dict | None = None  #: the engine that ran it (None when taken from a record)
    reused: bool = False  #: taken from a record of an earlier run


@dataclass(frozen=True)
class Records:
    """Where finished files are recorded, the settings they were made with, and whether to reuse them."""

    directory: Path
    settings: dict  #: what decides the results (never how they are run: workers, scheduler)
    resume: bool = False
    #: checks a record's frames before reuse (e.g. that its output files still exist)
    still_valid: Callable[[list], bool] | None = None


@dataclass
class BatchRun:
    """The outcome of :func:`segment_batch`."""

    results: list[FileResult]  #: one per input file, in input order
    card: ModelCard  #: the model's card (with ``--model auto``: the HRTEM model's)
    cards: dict  #: every model the batch may use, by name (one unless ``auto``)
    engine: dict  #: record of the engine (of the first file analysed, else as chosen here)
    workers: int  #: worker processes asked for (1: in this process)
    threads_per_worker: int | None  #: compute threads of each local worker; None when not set here
    scheduler: str | None  #: Dask scheduler address, or None
    seconds: float

    @property
    def failed(self) -> list[FileResult]:
        """The files that could not be processed, in input order."""
        return [r for r in self.results if r.error is not None]

    def execution(self) -> dict:
        """How the batch ran (JSON-able; kept out of resume fingerprints: it does not change results)."""
        return {"workers": self.workers, "threads_per_worker": self.threads_per_worker, "scheduler": self.scheduler}


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs for any file of the batch (pickled to each task)."""

    model: ModelChoice
    models: dict  #: name → (directory, weights stamp): the models the batch may use
    cards: dict  #: name → ModelCard
    pixel_size_A: float | None
    max_memory_gb: float
    job: str
    window_px: int
    batch: int
    tta: bool
    frame_function: Callable[[FrameInput, Any], Any]


def segment_batch(inputs: Sequence[str | Path], frame_function: Callable[[FrameInput, Any], Any], *,
                  model: ModelChoice | None = None, pixel_size_A: float | None = None, window_px: int = WINDOW_PX,
                  batch: int = BATCH, tta: bool = False, max_memory_gb: float = MEMORY_LIMIT_GB,
                  job: str = "segment", workers: int = 1, scheduler: Any = None, progress: bool = True,
                  description: str = "segmenting", records: Records | None = None,
                  on_file: Callable[[FileResult], None] | None = None,
                  on_start: Callable[[str], None] | None = None) -> BatchRun:
    """Segment every micrograph of ``inputs`` and pass each frame to ``frame_function(frame_input, card)``.

    Parameters
    ----------
    inputs : files and/or folders
        Folders contribute the micrographs directly inside them (:func:`expand_inputs`).
    frame_function : callable
        Called in the worker for every frame with a :class:`FrameInput` and the model card; it writes
        the frame's outputs and returns what the caller collects (picklable; JSON-able with ``records``).
        A module-level function or a ``functools.partial`` of one.
    model : ModelChoice
        The network (default: ``auto``, a shipped model chosen for each image by
        :func:`nanofind.segment.model_choice.choose_model`).
    pixel_size_A : float, optional
        Overrides the files' pixel sizes, Å.
    window_px, batch, tta
        Sliding window side (px), windows per forward pass, mirror averaging
        (see :func:`nanofind.segment.inference.predict_probability`).
    max_memory_gb : float
        Peak memory of the whole batch, GB (10⁹ B). Each of ``workers`` local workers works within an
        equal share of it; with ``scheduler``, each task gets all of it (size the Dask workers to match).
    job : str
        ``"segment"`` or ``"analyze"``: which memory model the scale guard applies.
    workers : int
        1 (default) runs here; more spawns that many local processes sharing the CPUs.
    scheduler : str or distributed.Client, optional
        Run the files on a Dask cluster (see the module docstring for the shared file system).
    progress : bool
        Show a progress bar (stdout) with ``description``.
    records : Records, optional
        Record finished files, and with ``records.resume`` reuse earlier records.
    on_file : callable, optional
        Called here with each :class:`FileResult` as soon as it and every file before it are done.
    on_start : callable, optional
        Called with one line saying which engine runs where, before the first file (default: printed
        above the progress bar).

    Raises
    ------
    NanofindInputError
        No micrographs found, an unusable model, workers below 1, a memory share below
        :data:`MIN_MEMORY_GB`, or an unreachable scheduler.
    """
    from nanofind.learn.engine import choose_engine
    from nanofind.learn.model_file import WEIGHTS, read_card, resolve_model_dir
    from nanofind.segment.model_choice import AUTO, available_shipped

    model = model or ModelChoice()
    if workers < 1:
        raise NanofindInputError(f"must be >= 1, got {workers}", "--workers")
    share_gb = max_memory_gb if scheduler is not None else max_memory_gb / workers
    if share_gb < MIN_MEMORY_GB:
        raise NanofindInputError(f"{max_memory_gb:g} GB shared by {workers} workers leaves {share_gb:.2g} GB each, "
                                 f"below the {MIN_MEMORY_GB:g} GB a worker needs; raise it or use fewer --workers",
                                 "--max-memory")
    files = expand_inputs(inputs)
    if not files:
        raise NanofindInputError("no micrographs found", " ".join(str(i) for i in inputs))
    start = time.perf_counter()
    directories = available_shipped() if model.model == AUTO else {str(model.model): resolve_model_dir(model.model)}
    models = {name: (str(d.resolve()), _stamp(d / WEIGHTS)) for name, d in directories.items()}
    results: list[FileResult | None] = [None] * len(files)
    if records is not None and records.resume:
        for i, path in enumerate(files):
            frames = load_record(records, path)
            if frames is not None:
                results[i] = FileResult(path, frames, reused=True)
    todo = [i for i, r in enumerate(results) if r is None]
    local = scheduler is None and min(workers, len(todo)) <= 1
    threads = None if scheduler is not None or local else threads_for(min(workers, len(todo)))
    if not local:  # a worker's first window pays the network's set-up anyway; warming up would only add to it
        model = replace(model, warm_up_px=None)
    cards = {name: read_card(d) for name, d in directories.items()}
    first = next(iter(cards))
    job_spec = _Job(model, models, cards, pixel_size_A, share_gb, job, window_px, batch, tta, frame_function)
    try:
        card = cards[first]
        if local:  # load here, so that an unusable model stops the batch before any file (exit status 2)
            runner, card = _runner(job_spec, first)
            engine = runner.engine
        else:  # workers load the networks themselves; the cards were checked above for the same early stop
            engine = choose_engine(model.precision, model.backend)
        where = (f"on the Dask scheduler {describe_scheduler(scheduler)}" if scheduler is not None else
                 f"on {min(workers, len(todo))} workers × {threads} threads (of {available_cpus()} CPUs)"
                 if threads else "")
        with ProgressBar(description, len(files), len(files) - len(todo), enabled=progress) as bar:
            (on_start or bar.print)(f"running {engine.describe()}" + (f" {where}" if where else ""))
            emitted = 0

            def emit():
                nonlocal emitted
                while emitted < len(files) and results[emitted] is not None:
                    if on_file:
                        on_file(results[emitted])
                    emitted += 1
                if emitted < len(files):
                    pending = next(i for i in todo if results[i] is None)
                    bar.describe(f"{description} {files[pending].name}")

            emit()
            tasks = [(job_spec, files[i]) for i in todo]
            for k, result in run_tasks(_run_file, tasks, workers=workers, scheduler=scheduler,
                                       threads_per_worker=threads):
                i = todo[k]
                if records is not None and result.error is None:
                    try:
                        save_record(records, files[i], result.frames)
                    except OSError as exc:
                        result = FileResult(files[i], error=f"{records.directory}: cannot write "
                                                            f"({exc.strerror or exc})", engine=result.engine)
                results[i] = result
                bar.advance()
                emit()
    finally:
        for name in models:  # free the networks of this process (and of an in-process cluster)
            forget_in_process(f"{_RUNNER_SLOT}:{name}")
    ran = next((r.engine for r in results if r is not None and r.engine), None)
    return BatchRun(results=list(results), card=card, cards=cards, engine=ran or engine.record(), workers=workers,
                    threads_per_worker=threads, scheduler=describe_scheduler(scheduler),
                    seconds=time.perf_counter() - start)


def _stamp(weights: Path) -> tuple | None:
    """What identifies a weights file's version (so a retrained model is loaded anew)."""
    return (weights.stat().st_mtime_ns, weights.stat().st_size) if weights.is_file() else None


def _runner(job: _Job, name: str):
    """The runner and card of the batch's model ``name`` in this process (loaded once per process and model)."""
    from nanofind.learn.engine import load_runner

    m = job.model
    directory, stamp = job.models[name]
    return cached_in_process(f"{_RUNNER_SLOT}:{name}", (directory, stamp, m),
                             lambda: load_runner(directory, m.precision, m.backend, warm_up_px=m.warm_up_px))


def _run_file(job: _Job, path: Path) -> FileResult:
    """Worker task: every frame of one file, segmented (by the model chosen for it) and handed to the frame function."""
    from nanofind.segment.model_choice import AUTO, choose_model

    engine = None
    try:
        fixed = next(iter(job.models)) if job.model.model != AUTO else None
        if fixed is not None:
            engine = _runner(job, fixed)[0].engine.record()
        micrograph = read_micrograph(path, job.pixel_size_A, max_pixels=max_image_pixels(job.max_memory_gb, job.job))
        frames = []
        for frame in micrograph.frames():
            started = time.perf_counter()
            annotations = find_annotations(frame.array, frame.metadata.get("data_bar_rows"), beam_edge=True)
            original = frame.array if annotations.found else None
            if annotations.found:
                frame = Micrograph(annotations.cleaned(frame.array), frame.pixel_size_A, frame.metadata, frame.source)
            decision = choose_model(frame.array, frame.pixel_size_A, job.model.model if fixed is None else fixed,
                                    cards=job.cards)
            runner, card = _runner(job, decision.model)
            engine = engine or runner.engine.record()
            plan = plan_scale(frame.array.shape, frame.pixel_size_A, card, job.max_memory_gb, job.job, str(path),
                              wanted_zoom=decision.wanted_zoom)
            plan.warnings[:0] = decision.warnings
            probability = predict_probability(runner, card, frame.array, frame.pixel_size_A, window_px=job.window_px,
                                              batch=job.batch, tta=job.tta, plan=plan)
            record = decision.to_dict()
            if annotations.found:
                probability[annotations.mask] = 0.0
                record["reason"] += f"; {annotations.sentence()}"
                record["annotations"] = annotations.to_dict()
            frames.append(job.frame_function(FrameInput(path, frame, plan, probability, started, decision=record,
                                                        annotations=annotations if annotations.found else None,
                                                        original=original), card))
        return FileResult(path, frames, engine=engine)
    except NanofindInputError as exc:
        return FileResult(path, error=str(exc), engine=engine)
    except Exception as exc:  # one bad file never stops a batch
        return FileResult(path, error=f"{type(exc).__name__}: {exc}", engine=engine)


def _record_path(records: Records, path: Path) -> Path:
    import hashlib

    return records.directory / (hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16] + ".json")


def _fingerprint(records: Records, path: Path) -> dict:
    st = path.stat()
    return {"file": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "settings": records.settings}


def save_record(records: Records, path: Path, frames: list) -> None:
    """Keep one finished file's frame results (JSON) for a resumed batch."""
    record = _record_path(records, path)
    record.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(record, json.dumps({"fingerprint": _fingerprint(records, path), "frames": frames}))


def load_record(records: Records, path: Path) -> list | None:
    """A file's frame results from an earlier run with the same settings on the same (unchanged) file, or None."""
    try:
        data = json.loads(_record_path(records, path).read_text())
        if data["fingerprint"] != json.loads(json.dumps(_fingerprint(records, path))):
            return None
        frames = data["frames"]
        if records.still_valid is not None and not records.still_valid(frames):
            return None
        return frames
    except (OSError, ValueError, KeyError, TypeError):
        return None
