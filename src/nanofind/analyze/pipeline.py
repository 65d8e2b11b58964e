"""The main job: micrographs in; particle masks, measurements, overlays, a summary and a report out.

``analyze_batch`` reads every file (2D images, or each frame of a stack), segments it with a model
(the shipped one by default), cleans the mask, splits touching particles, measures them and writes
into the output directory:

- ``masks/<stem>_mask.png`` (0/255, after cleaning) and ``masks/<stem>_labels.png`` (16-bit ids);
- ``overlays/<stem>_overlay.png``: the micrograph with numbered particle outlines;
- ``particles.csv``: one row per particle (nm columns empty when the pixel size is unknown);
- ``size_histogram.png``, ``summary.json`` (every failed file with its error) and ``report.html``.

One bad file never stops a batch: it is listed as failed, and the batch's exit status is 1.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from skimage.measure import label

from nanofind._files import atomic_path, write_text_atomic
from nanofind._progress import ProgressBar
from nanofind.analyze.measure import (
    PARTICLE_COLUMNS,
    CleaningSettings,
    clean_mask,
    measure_particles,
    split_particles,
    summarise,
)
from nanofind.analyze.report import write_report
from nanofind.errors import NanofindInputError
from nanofind.io.micrograph import SUFFIXES, array_and_pixel_size, read_micrograph
from nanofind.learn.scale_guard import MEMORY_LIMIT_GB, ScalePlan, max_image_pixels, plan_scale

#: Bundled example micrographs (simulated by nanofind, see ``examples.json`` there).
EXAMPLES_DIR = Path(__file__).with_name("examples")
#: Outline colours of the overlays: ordinary, cut by the image edge, agglomerate.
COLOURS = {"particle": (255, 60, 40), "edge": (255, 210, 0), "agglomerate": (230, 60, 255)}
#: Columns of particles.csv.
CSV_COLUMNS = ("file", "frame") + PARTICLE_COLUMNS
#: Where each finished file's results are kept so that an interrupted batch resumes.
RECORDS = ".records"


@dataclass
class AnalysisSettings:
    """What ``nanofind analyze`` does; recorded in ``summary.json`` and the report."""

    model: str = "default"
    threshold: float | None = None  #: default: the model card's
    pixel_size_A: float | None = None  #: overrides the files' pixel size, Å
    window_px: int = 512
    tta: bool = False  #: average the model over mirror images (2.4-3.2× the time; see docs/benchmarks.md)
    precision: str = "auto"  #: auto, fp32 or bf16 (see nanofind.learn.engine)
    backend: str = "auto"  #: auto, torch or onnx
    max_memory_gb: float = MEMORY_LIMIT_GB  #: peak memory to stay within (see nanofind.learn.scale_guard)
    cleaning: CleaningSettings = field(default_factory=CleaningSettings)

    def to_dict(self) -> dict:
        """JSON-able record."""
        d = asdict(self)
        d["cleaning"] = self.cleaning.to_dict()
        return d


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files named directly, plus the micrographs directly inside named directories (sorted)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in SUFFIXES and not p.stem.endswith("_truth"))
            files.extend(found)
        else:
            files.append(path)
    return files


def _stretch(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, (0.5, 99.5))
    return (np.clip((image - lo) / (hi - lo if hi > lo else 1.0), 0, 1) * 255).astype(np.uint8)


def write_overlay(image: np.ndarray, labels: np.ndarray, rows: list[dict], path: Path) -> Path:
    """The micrograph in grey with each particle's outline and number (colours: :data:`COLOURS`)."""
    from PIL import Image, ImageDraw
    from skimage.segmentation import find_boundaries

    grey = _stretch(image)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    edges = find_boundaries(labels, mode="inner")
    if max(labels.shape) > 1024:  # keep outlines visible when the page scales a large image down
        from scipy.ndimage import binary_dilation

        edges = binary_dilation(edges, iterations=max(1, max(labels.shape) // 1024))
    colour_of = np.zeros((int(labels.max()) + 1, 3), np.uint8)  # by particle id: one lookup for every outline
    for r in rows:
        colour_of[r["particle_id"]] = COLOURS["agglomerate" if r["agglomerate"] else "edge" if r["touches_edge"]
                                              else "particle"]
    rgb[edges] = colour_of[labels[edges]]
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    size = max(14, max(labels.shape) // 28)
    try:
        from PIL import ImageFont

        font = ImageFont.load_default(size=size)
    except (TypeError, OSError):
        font = None
    for r in rows:
        x, y = r["centroid_x_px"], r["centroid_y_px"]
        draw.text((x, y), str(r["particle_id"]), fill=(255, 255, 255), font=font, anchor="mm", stroke_width=2,
                  stroke_fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def write_histogram(rows: list[dict], path: Path) -> Path:
    """Histogram of equivalent diameters (nm where every image's pixel size is known, else px)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    nm = bool(rows) and all(r["equivalent_diameter_nm"] is not None for r in rows)
    d = [r["equivalent_diameter_nm" if nm else "equivalent_diameter_px"] for r in rows if not r["touches_edge"]]
    fig = Figure(figsize=(6, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if d:
        ax.hist(d, bins=min(30, max(5, len(d) // 3)), color="#3b75af", edgecolor="white")
        ax.axvline(float(np.mean(d)), color="#c0392b", linestyle="--", label=f"mean {np.mean(d):.2f}")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no particles away from the image edges", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel=f"equivalent diameter ({'nm' if nm else 'px'})", ylabel="particles",
           title=f"Particle sizes (n = {len(d)}, edge-cut particles excluded)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def analyze_frame(model, card: dict, array, pixel_size_A: float | None = None,
                  settings: AnalysisSettings | None = None, plan: ScalePlan | None = None):
    """Segment and measure one 2D image (array, or a 2D ``Micrograph``); returns (rows, labels, probability).

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
    threshold = card["threshold"] if settings.threshold is None else settings.threshold
    mask = clean_mask(prob >= threshold, pixel_size_A, settings.cleaning)
    labels = split_particles(mask, settings.cleaning.split_depth) if settings.cleaning.split else label(mask)
    rows = measure_particles(labels, array, prob, pixel_size_A, settings.cleaning)
    return rows, labels, prob


def _analyze_file(model, card: dict, path: Path, out: Path, settings: AnalysisSettings) -> dict:
    """Analyse every frame of one file, writing its masks and overlays; returns its images and rows."""
    images, all_rows = [], []
    micrograph = read_micrograph(path, settings.pixel_size_A,
                                 max_pixels=max_image_pixels(settings.max_memory_gb, "analyze"))
    for frame in micrograph.frames():
        t = time.perf_counter()
        plan = plan_scale(frame.array.shape, frame.pixel_size_A, card, settings.max_memory_gb, "analyze", str(path))
        rows, labels, _ = analyze_frame(model, card, frame.array, frame.pixel_size_A, settings, plan)
        k = frame.metadata.get("frame")
        stem = frame.name
        _write_labels(labels, out / "masks", stem)
        overlay = write_overlay(frame.array, labels, rows, out / "overlays" / f"{stem}_overlay.png")
        for r in rows:
            all_rows.append({"file": str(path), "frame": k, **r})
        s = summarise(rows, labels)
        images.append({"file": str(path), "frame": k, "overlay_png": str(overlay), "n_particles": s["count"],
                       "coverage": s["coverage"], "pixel_size_A": frame.pixel_size_A,
                       "mean_diameter_nm": s.get("diameter_mean") if s["unit"] == "nm" else None,
                       "mean_diameter_px": float(np.mean([r["equivalent_diameter_px"] for r in rows])) if rows else 0.0,
                       "seconds": round(time.perf_counter() - t, 2), "warnings": plan.warnings,
                       "zoom": plan.zoom, "working_pixel_size_A": plan.working_pixel_size_A, "summary": s})
    return {"images": images, "rows": all_rows}


def _record_path(out: Path, path: Path) -> Path:
    import hashlib

    return out / RECORDS / (hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16] + ".json")


def _fingerprint(path: Path, settings: AnalysisSettings) -> dict:
    st = path.stat()
    return {"file": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "settings": settings.to_dict()}


def _save_record(out: Path, path: Path, settings: AnalysisSettings, done: dict) -> None:
    record = _record_path(out, path)
    record.parent.mkdir(exist_ok=True)
    write_text_atomic(record, json.dumps({"fingerprint": _fingerprint(path, settings), **done}))


def _load_record(out: Path, path: Path, settings: AnalysisSettings) -> dict | None:
    """A finished file's results from an earlier run of the same settings on the same file, or None."""
    record = _record_path(out, path)
    try:
        data = json.loads(record.read_text())
        if data["fingerprint"] != json.loads(json.dumps(_fingerprint(path, settings))):
            return None
        if not all(Path(i["overlay_png"]).is_file() for i in data["images"]):
            return None
        return {"images": data["images"], "rows": data["rows"]}
    except (OSError, ValueError, KeyError):
        return None


def analyze_batch(inputs: list[str | Path], out_dir: str | Path, settings: AnalysisSettings | None = None,
                  progress: bool = True, resume: bool = False) -> dict:
    """Analyse micrographs into ``out_dir`` (see the module docstring); returns the summary.

    ``summary["failed"]`` lists every file that could not be analysed, with its error. Each finished
    file is recorded in ``out_dir/.records``; with ``resume``, files finished by an interrupted run
    with the same settings (and unchanged since) are taken from there instead of analysed again.
    """
    from nanofind.learn.engine import load_runner

    settings = settings or AnalysisSettings()
    out = Path(out_dir)
    try:
        (out / "masks").mkdir(parents=True, exist_ok=True)
        (out / "overlays").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanofindInputError(f"cannot create ({exc.strerror or exc})", str(out)) from None
    files = expand_inputs(inputs)
    if not files:
        raise NanofindInputError("no micrographs found", " ".join(str(i) for i in inputs))
    start = time.perf_counter()
    runner, card = load_runner(settings.model, settings.precision, settings.backend, warm_up_px=settings.window_px)
    all_rows, images, failed = [], [], []
    with ProgressBar("analysing", len(files), enabled=progress) as bar:
        bar.print(f"running {runner.engine.describe()}")
        for path in files:
            bar.describe(f"analysing {path.name}")
            try:
                done = _load_record(out, path, settings) if resume else None
                if done is None:
                    done = _analyze_file(runner, card, path, out, settings)
                    _save_record(out, path, settings, done)
                images.extend(done["images"])
                all_rows.extend(done["rows"])
            except NanofindInputError as exc:
                failed.append({"file": str(path), "error": str(exc)})
            except Exception as exc:  # one bad file never stops a batch
                failed.append({"file": str(path), "error": f"{type(exc).__name__}: {exc}"})
            bar.advance()
    _write_csv(all_rows, out / "particles.csv")
    # the batch's sizes leave out images the scale guard warned about, unless nothing else is left
    questionable = [i for i in images if i.get("warnings")]
    excluded = {(i["file"], i["frame"]) for i in questionable} if len(questionable) < len(images) else set()
    sized_rows = [r for r in all_rows if (r["file"], r["frame"]) not in excluded]
    histogram = write_histogram(sized_rows, out / "size_histogram.png")
    known = [i["pixel_size_A"] is not None for i in images]
    batch = summarise(sized_rows)
    summary = {
        "files": len(files), "images": len(images), "particles": len(all_rows),
        "failed": failed, "pixel_size_known": bool(images) and all(known),
        "size_distribution": {k.removeprefix("diameter_"): v for k, v in batch.items()
                              if k.startswith("diameter") or k == "unit"},
        "size_distribution_excludes": [{"file": f, "frame": k} for f, k in sorted(excluded, key=str)],
        "coverage_mean": round(float(np.mean([i["coverage"] for i in images])), 5) if images else None,
        "per_image": images,
        "warnings": [{"file": i["file"], "frame": i["frame"], "warning": w} for i in images
                     for w in i.get("warnings", [])],
        "seconds": round(time.perf_counter() - start, 2), "settings": settings.to_dict(),
        "engine": runner.engine.record(),
        "model": {"architecture": card["architecture"], "threshold": card["threshold"],
                  "directory": str(settings.model)},
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False))
    write_report(out / "report.html", images=images, particles=all_rows, summary=summary, card=card,
                 settings={**settings.to_dict(), "engine": runner.engine.record()}, histogram_png=histogram)
    return summary


def _write_labels(labels: np.ndarray, directory: Path, stem: str) -> None:
    from PIL import Image

    Image.fromarray(((labels > 0) * 255).astype(np.uint8)).save(directory / f"{stem}_mask.png")
    Image.fromarray(np.clip(labels, 0, 65535).astype(np.uint16)).save(directory / f"{stem}_labels.png")


def _write_csv(rows: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, CSV_COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r[k] is None else r[k]) for k in CSV_COLUMNS})

