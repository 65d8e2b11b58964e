"""The main job: micrographs in; particle masks, measurements, overlays, a summary and a report out.

``analyze_batch`` reads every file (2D images, or each frame of a stack), segments it with a model
(the shipped one by default), cleans the mask, splits touching particles, measures them and writes
into the output directory:

- ``masks/<stem>_mask.png`` (0/255, after cleaning) and ``masks/<stem>_labels.png`` (16-bit ids);
- ``overlays/<stem>_overlay.png``: the micrograph with numbered particle outlines;
- ``particles.csv``: one row per particle (nm columns empty when the pixel size is unknown);
- ``size_histogram.png``, ``summary.json`` (every failed file with its error) and ``report.html``.

One bad file never stops a batch: it is listed as failed, and the batch's exit status is 1.

Files are read, segmented and handed to :func:`_analyze_frame` by the batch machinery that
``nanofind segment`` shares (:func:`nanofind.segment.batch.segment_batch`): in this process, or on
``workers`` local processes or a Dask ``scheduler``'s workers, which write each file's masks and
overlays. This process puts their results back into input order and writes particles.csv,
summary.json, the histogram and the report, so these never depend on how the batch ran.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from nanofind._files import write_text_atomic
from nanofind.analyze.measure import (
    CleaningSettings,
    cleaning_for_particles,
    find_particles,
    measure_particles,
    summarise,
)
from nanofind.analyze.outputs import write_histogram, write_label_images, write_overlay, write_particles_csv
from nanofind.analyze.report import write_report
from nanofind.analyze.review import review_signals
from nanofind.analyze.table import DEFECT_DTYPES, KNOWN_DTYPES, PARTICLE_DTYPES, SOURCE_DTYPES, ParticleTable
from nanofind.classify.classes import CLASS_NAMES
from nanofind.errors import NanofindInputError
from nanofind.io.micrograph import array_and_pixel_size
from nanofind.learn.card import ModelCard
from nanofind.learn.scale_guard import MEMORY_LIMIT_GB, ScalePlan, plan_scale
from nanofind.segment.batch import FrameInput, ModelChoice, Records, segment_batch
from nanofind.segment.batch import expand_inputs as expand_inputs  # where analysis callers have found it
from nanofind.segment.outline import outline_mask

#: Bundled example micrographs (simulated by nanofind, see ``examples.json`` there).
EXAMPLES_DIR = Path(__file__).with_name("examples")
#: Where each finished file's results are kept so that an interrupted batch resumes.
RECORDS = ".records"


@dataclass
class AnalysisSettings:
    """What ``nanofind analyze`` does; recorded in ``summary.json`` and the report."""

    model: str = "auto"  #: auto (a shipped model per image), hrtem (= default), lowmag, or a model directory
    threshold: float | None = None  #: default: the model card's
    pixel_size_A: float | None = None  #: overrides the files' pixel size, Å
    window_px: int = 512
    tta: bool = False  #: average the model over mirror images (2.4-3.2× the time; see docs/benchmarks.md)
    precision: str = "auto"  #: auto, fp32 or bf16 (see nanofind.learn.engine)
    backend: str = "auto"  #: auto, torch or onnx
    max_memory_gb: float = MEMORY_LIMIT_GB  #: peak memory to stay within (see nanofind.learn.scale_guard)
    cleaning: CleaningSettings = field(default_factory=CleaningSettings)
    classify: bool = True  #: give every particle of an HRTEM image a defect class (nanofind.classify)
    classifier: str = "default"  #: the shipped defect classifier, or a classifier directory

    def to_dict(self) -> dict:
        """JSON-able record."""
        d = asdict(self)
        d["cleaning"] = self.cleaning.to_dict()
        return d


def analyze_frame(model, card: ModelCard, array, pixel_size_A: float | None = None,
                  settings: AnalysisSettings | None = None, plan: ScalePlan | None = None):
    """Segment and measure one 2D image (array, or a 2D ``Micrograph``); returns (table, labels, probability).

    ``table`` is a :class:`~nanofind.analyze.table.ParticleTable`, one row per particle of ``labels``.

    ``model`` is a network or a runner (:func:`nanofind.learn.engine.make_runner`); ``plan`` is the
    image's checked resampling (:func:`nanofind.learn.scale_guard.plan_scale`), made here if not given.
    """
    from nanofind.segment.inference import predict_probability

    settings = settings or AnalysisSettings()
    array, pixel_size_A = array_and_pixel_size(array, pixel_size_A)
    if plan is None:
        plan = plan_scale(array.shape, pixel_size_A, card, settings.max_memory_gb, "analyze")
    prob = predict_probability(model, card, array, pixel_size_A, window_px=settings.window_px, tta=settings.tta,
                               plan=plan)
    table, labels = measure_frame(prob, array, pixel_size_A, card, settings)
    return table, labels, prob


def measure_frame(prob: np.ndarray, array: np.ndarray, pixel_size_A: float | None, card: ModelCard,
                  settings: AnalysisSettings, outline: dict | None = None):
    """Threshold, clean, split and measure one image's particle probability; returns (ParticleTable, labels).

    ``prob`` and ``array`` are on the image's own grid; ``pixel_size_A`` (Å, or None) sets the
    cleaning's sizes and the nm columns. ``outline`` (a dict) is told whether the outlines were
    refined (:func:`nanofind.segment.outline.outline_mask`).
    """
    mask = outline_mask(card, prob, array, settings.threshold, record=outline)
    labels = find_particles(mask, pixel_size_A, settings.cleaning)
    return measure_particles(labels, array, prob, pixel_size_A, settings.cleaning), labels


def _analyze_frame(item: FrameInput, card: ModelCard, *, out: Path, settings: AnalysisSettings) -> dict:
    """Batch frame function: measure one segmented frame and write its masks and overlay.

    Returns its image record and particle rows, with the file and frame they come from (JSON-able:
    they are also the resume record).
    """
    frame = item.frame
    outline: dict = {}
    cleaning_px = None
    if frame.pixel_size_A is None:  # sizes in px: clean up on the scale of the particles measured for the choice
        cleaning_px = ((item.decision or {}).get("particle_scale") or {}).get("diameter_px")
        if cleaning_px is not None:
            settings = replace(settings, cleaning=cleaning_for_particles(settings.cleaning, cleaning_px))
    table, labels = measure_frame(item.probability, frame.array, frame.pixel_size_A, card, settings, outline)
    if item.annotations is not None:
        table = _cut_by_annotations(table, labels, item.annotations.mask)
    stem = frame.name
    table, examples = _defect_classes(table, labels, frame.array, frame.pixel_size_A, item.decision, settings,
                                      out / "classes", stem)
    write_label_images(labels, out / "masks", stem)
    shown = frame.array if item.original is None else item.original  # annotations shown as they were
    overlay = write_overlay(shown, labels, table, out / "overlays" / f"{stem}_overlay.png")
    k = item.index
    s = summarise(table, labels)
    plan = item.plan
    review = review_signals(item.probability, labels > 0, frame.array, frame.pixel_size_A)
    image = {"file": str(item.path), "frame": k, "overlay_png": str(overlay), "n_particles": s["count"],
             "coverage": s["coverage"], "pixel_size_A": frame.pixel_size_A,
             "mean_diameter_nm": s.get("diameter_mean") if s["unit"] == "nm" else None,
             "mean_diameter_px": float(np.mean(table["equivalent_diameter_px"])) if len(table) else 0.0,
             "seconds": round(time.perf_counter() - item.started_s, 2),
             "warnings": plan.warnings + ([review["reason"]] if review["review"] else []),
             "otsu_agreement_dice": review["otsu_agreement_dice"], "unsure_fraction": review["unsure_fraction"],
             "review": review["review"],
             "zoom": plan.zoom, "working_pixel_size_A": plan.working_pixel_size_A, "model": item.decision,
             "outlines_refined": outline["outlines_refined"],
             "threshold_outlines": outline.get("threshold_outlines", 0),
             "cleaning_for_diameter_px": None if cleaning_px is None else round(float(cleaning_px), 2), "summary": s,
             "defect_examples": examples}
    sourced = table.with_columns({"file": str(item.path), "frame": k}, dtypes=SOURCE_DTYPES, first=True)
    return {"image": image, "rows": sourced.rows()}


def _cut_by_annotations(table: ParticleTable, labels: np.ndarray, annotation_mask: np.ndarray) -> ParticleTable:
    """``table`` with the particles that reach a burned-in annotation marked as touching the edge (they are cut)."""
    from scipy import ndimage as ndi

    reach = ndi.binary_dilation(annotation_mask) & (labels > 0)
    cut = np.isin(np.asarray(table["particle_id"]), np.unique(labels[reach]))
    return table.with_columns({"touches_edge": np.asarray(table["touches_edge"], bool) | cut})


def _defect_classes(table: ParticleTable, labels, image, pixel_size_A, decision, settings: AnalysisSettings,
                    folder: Path, stem: str) -> tuple[ParticleTable, list[dict]]:
    """The table with ``defect_class``, ``defect_probability`` and ``p_<class>``, and example crops for the report."""
    from nanofind._parallel import cached_in_process
    from nanofind.classify.model import load_classifier
    from nanofind.classify.population import classify_particles, should_classify, write_examples

    model_name = (decision or {}).get("model") if isinstance(decision, dict) else None
    if not (settings.classify and len(table) and should_classify(model_name, pixel_size_A)):
        return table.with_columns({name: ("" if name == "defect_class" else np.nan) for name in DEFECT_DTYPES},
                                  dtypes=DEFECT_DTYPES), []
    classifier = cached_in_process("defect_classifier", settings.classifier,
                                   lambda: load_classifier(settings.classifier))
    names, probabilities, crops = classify_particles(image, labels, classifier)
    row_of = {c.label: k for k, c in enumerate(crops)}
    rows = np.array([row_of.get(int(i), -1) for i in np.asarray(table["particle_id"], np.int64)], np.int64)
    found = rows >= 0
    p = np.full((len(rows), len(CLASS_NAMES)), np.nan)
    p[found] = probabilities[rows[found]]
    best = np.full(len(rows), np.nan)
    best[found] = p[found].max(axis=1)
    columns = {"defect_class": [names[r] if r >= 0 else "" for r in rows], "defect_probability": np.round(best, 4),
               **{f"p_{name}": np.round(p[:, k], 4) for k, name in enumerate(CLASS_NAMES)}}
    table = table.with_columns(columns, dtypes=DEFECT_DTYPES)
    return table, write_examples(crops, names, probabilities, folder, stem)


def _overlays_exist(frames: list) -> bool:
    """A resume record is only reused while the overlays it names are still there."""
    return all(Path(f["image"]["overlay_png"]).is_file() for f in frames)


def analyze_batch(inputs: list[str | Path], out_dir: str | Path, settings: AnalysisSettings | None = None,
                  progress: bool = True, resume: bool = False, workers: int = 1, scheduler: Any = None) -> dict:
    """Analyse micrographs into ``out_dir`` (see the module docstring); returns the summary.

    ``summary["failed"]`` lists every file that could not be analysed, with its error. Each finished
    file is recorded in ``out_dir/.records``; with ``resume``, files finished by an interrupted run
    with the same settings (and unchanged since) are taken from there instead of analysed again,
    however many workers either run had.

    ``workers`` local processes (default 1: here, the network using every core) or a Dask
    ``scheduler`` (address or ``distributed.Client``; inputs and ``out_dir`` on a file system its
    workers share) analyse the files; ``settings.max_memory_gb`` is shared equally by local workers
    (see :func:`nanofind.segment.batch.segment_batch`). The outputs do not depend on either, except
    where a worker's memory share lowers the resampling of a very large image (with a warning), or a
    pixel's probability lies within rounding of the threshold (see :mod:`nanofind.segment.batch`).
    """
    settings = settings or AnalysisSettings()
    out = Path(out_dir)
    try:
        (out / "masks").mkdir(parents=True, exist_ok=True)
        (out / "overlays").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanofindInputError(f"cannot create ({exc.strerror or exc})", str(out)) from None
    start = time.perf_counter()
    run = segment_batch(
        inputs, partial(_analyze_frame, out=out, settings=settings),
        model=ModelChoice(settings.model, settings.precision, settings.backend, warm_up_px=settings.window_px),
        pixel_size_A=settings.pixel_size_A, window_px=settings.window_px, tta=settings.tta,
        max_memory_gb=settings.max_memory_gb, job="analyze", workers=workers, scheduler=scheduler,
        progress=progress, description="analysing",
        records=Records(out / RECORDS, settings.to_dict(), resume=resume, still_valid=_overlays_exist))
    card = run.card
    images = [f["image"] for r in run.results for f in r.frames]
    rows = [row for r in run.results for f in r.frames for row in f["rows"]]
    particles = (ParticleTable.from_rows(rows, dtypes={**KNOWN_DTYPES, **SOURCE_DTYPES}) if rows
                 else ParticleTable.empty({**SOURCE_DTYPES, **PARTICLE_DTYPES}))
    failed = [{"file": str(r.path), "error": r.error} for r in run.failed]
    write_particles_csv(particles, out / "particles.csv")
    # the batch's sizes leave out images the scale guard or the review warned about, and, in a batch where some
    # images have a known pixel size, those without one (so that the distribution is in nm), unless nothing is left
    reasons = {}
    for i in images:
        if i.get("warnings"):
            reasons[(i["file"], i["frame"])] = "warned about"
    if any(i["pixel_size_A"] for i in images):
        for i in images:
            if not i["pixel_size_A"]:
                reasons.setdefault((i["file"], i["frame"]), "pixel size unknown (sizes in px)")
    excluded = set(reasons) if len(reasons) < len(images) else set()
    sized = particles.select([(f, k) not in excluded for f, k in zip(particles["file"], particles["frame"],
                                                                    strict=True)])
    histogram = write_histogram(sized, out / "size_histogram.png")
    known = [i["pixel_size_A"] is not None for i in images]
    batch = summarise(sized)
    summary = {
        "files": len(run.results), "images": len(images), "particles": len(particles),
        "failed": failed, "pixel_size_known": bool(images) and all(known),
        "size_distribution": {k.removeprefix("diameter_"): v for k, v in batch.items()
                              if k.startswith("diameter") or k == "unit"},
        "size_distribution_excludes": [{"file": f, "frame": k, "reason": reasons[(f, k)]}
                                       for f, k in sorted(excluded, key=str)],
        "coverage_mean": round(float(np.mean([i["coverage"] for i in images])), 5) if images else None,
        "per_image": images,
        "warnings": [{"file": i["file"], "frame": i["frame"], "warning": w} for i in images
                     for w in i.get("warnings", [])],
        "seconds": round(time.perf_counter() - start, 2), "settings": {**settings.to_dict(), **run.execution()},
        "engine": run.engine,
        "model": {"architecture": card.architecture, "threshold": card.threshold,
                  "directory": str(settings.model)},
        "models": _models_used(images, run.cards),
        "defect_classes": _defect_summary(particles, settings),
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False))
    write_report(out / "report.html", images=images, particles=particles, summary=summary, card=card,
                 settings={**settings.to_dict(), **run.execution(), "engine": run.engine}, histogram_png=histogram,
                 cards=run.cards)
    return summary


def _defect_summary(particles: ParticleTable, settings: AnalysisSettings) -> dict | None:
    """Population statistics of the defect classes (seed 004's form), and which classifier gave them."""
    if not settings.classify or "defect_class" not in particles.columns:
        return None
    from nanofind.classify.model import classifier_dir, read_classifier_card
    from nanofind.classify.population import population_statistics

    classes = np.asarray([c or "" for c in particles["defect_class"]], dtype=str)
    classified = classes != ""
    probabilities = None
    if all(f"p_{name}" in particles.columns for name in CLASS_NAMES):  # absent in records of older versions
        probabilities = np.stack([np.asarray(particles[f"p_{name}"], float) for name in CLASS_NAMES], axis=1)
        if np.isnan(probabilities[classified]).any():
            probabilities = None
        else:
            probabilities = probabilities[classified]
    # the card alone: loading the trees again would cost a second or more
    card = read_classifier_card(classifier_dir(settings.classifier))
    cv = card.get("training", {}).get("cross_validation") or {}
    about = {"directory": settings.classifier, "method": card.get("method"),
             "cross_validated_balanced_accuracy": cv.get("balanced_accuracy")}
    if cv.get("of"):  # a mixed classifier's folds score its trees only
        about["cross_validated"] = cv["of"]
    return {**population_statistics(classes[classified], probabilities), "classified": int(classified.sum()),
            "not_classified": len(particles) - int(classified.sum()), "classifier": about}


def _models_used(images: list[dict], cards: dict) -> dict:
    """Per model that segmented an image: how many, its card's facts, and the time its choice took (s)."""
    used: dict[str, dict] = {}
    for image in images:
        choice = image.get("model") or {}
        name = choice.get("model")
        if name is None:
            continue
        entry = used.setdefault(name, {"images": 0, "choice_seconds": 0.0})
        entry["images"] += 1
        entry["choice_seconds"] = round(entry["choice_seconds"] + float(choice.get("seconds") or 0.0), 4)
        card = cards.get(name)
        if card is not None:
            entry.update(directory=choice.get("directory"), architecture=card.architecture, imaging=card.imaging,
                         threshold=card.threshold, hysteresis_low=card.hysteresis_low,
                         refine_outlines_below_px=card.refine_outlines_below_px)
    return used
