"""``nanofind columns IMAGES... -o OUT``: atomic columns of micrographs, as tables, overlays and tracks.

Per input file ``<stem>`` (every frame of a stack), into ``OUT``:

- ``<stem>_columns.csv``: one row per column (:data:`nanofind.columns.outputs.CSV_COLUMNS`), with
  ``frame`` and ``track_id`` first for a stack. ``x_A, y_A`` are Å from the top-left corner of the
  top-left pixel, x along columns and y along rows (``x_px, y_px`` the same in pixels);
  ``intensity`` the mean raw value over a disc of a quarter spacing; ``peak`` the band-passed peak
  height; ``edge`` 1 where the refinement window was cut by the border; ``surface`` 1 where the
  column misses some of its nearest neighbours (:func:`nanofind.columns.tracks.surface_columns`).
  ``height`` (atoms along the beam), ``element`` (the column's sublattice) and ``confidence``
  (0–1) come from a column-height model with ``--method network`` (:mod:`nanofind.columns.model`;
  the columns are then the peaks of its column probability, ``peak``) and are empty with
  ``--method peaks``.
- ``<stem>_columns.png``: the (first) frame with a dot on every column, coloured by height
  (network) or intensity (peaks).
- ``--method network``: ``<stem>_heights.tif``, the most likely height per pixel (0 off the
  columns; one page per frame; the pixel size in its resolution tags). The network runs only on
  images whose first frame repeats like a lattice (:func:`nanofind.columns.peaks.lattice_spacing_px`;
  ``--spacing`` skips the check), since a network answers even on noise.

With ``--region auto`` (the default) columns are searched only where the image holds a lattice
of the column spacing (:func:`nanofind.columns.peaks.crystal_region`), not in the amorphous film.
- for a stack, ``<stem>_surface_tracks.png``: the first frame's surface columns (rows, in order
  around the particle) against frame, coloured by height (network) or intensity (peaks).
- ``<stem>_columns_summary.png`` and ``<stem>_columns.json``: histograms and the record of what
  was found and with which settings. A file whose record matches the settings is not redone, so an
  interrupted batch resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from nanofind._version import __version__
from nanofind.errors import NanofindInputError
from nanofind.io.annotations import find_annotations


@dataclass(frozen=True)
class ColumnSettings:
    """What ``nanofind columns`` was asked for; lengths in Å (converted with each file's pixel size)."""

    method: str = "peaks"  #: peaks (classical) or network (a column-height model)
    model: str = "default"  #: network: ``default`` (the shipped CeO2 [110] model) or a model folder
    symmetric: bool = False  #: network: average the answers over the 8 quarter turns and mirrors (8× the time)
    contrast: str = "auto"  #: auto, bright or dark
    refine: str = "com"  #: com, gaussian or none
    spacing_A: float | None = None  #: nearest-neighbour column spacing; measured on the first frame if None
    min_separation_A: float | None = None  #: default 0.6 of the spacing
    threshold_sigma: float = 5.0
    track_tolerance_A: float = 0.5  #: stacks: a column moves at most this far between frames (after drift)
    region: str = "auto"  #: auto: only where the image holds a lattice (:func:`crystal_region`); all: everywhere


def _check(settings: ColumnSettings) -> None:
    if settings.method not in ("peaks", "network"):
        raise NanofindInputError(f"must be peaks or network, got {settings.method!r}", "--method")
    for name in ("spacing_A", "min_separation_A"):
        value = getattr(settings, name)
        if value is not None and not (np.isfinite(value) and value > 0):
            raise NanofindInputError(f"must be > 0 Å, got {value}", "--" + name[:-2].replace("_", "-"))
    if not (np.isfinite(settings.threshold_sigma) and settings.threshold_sigma >= 0):
        raise NanofindInputError(f"must be >= 0, got {settings.threshold_sigma}", "--threshold-sigma")
    if settings.region not in ("auto", "all"):
        raise NanofindInputError(f"must be auto or all, got {settings.region!r}", "--region")
    if not (np.isfinite(settings.track_tolerance_A) and settings.track_tolerance_A > 0):
        raise NanofindInputError(f"must be > 0 Å, got {settings.track_tolerance_A}", "--track-tolerance")


def _nearest_neighbour(xy: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    if len(xy) < 2:
        return np.full(len(xy), np.nan)
    distance, _ = cKDTree(xy).query(xy, k=2)
    return distance[:, 1]


@dataclass
class FrameColumns:
    """The columns of one frame, in px (origin at the top-left corner of the top-left pixel)."""

    x_px: np.ndarray
    y_px: np.ndarray
    intensity: np.ndarray
    peak: np.ndarray
    edge: np.ndarray
    spacing_px: float
    contrast: str
    settings: dict
    height: np.ndarray | None = None
    element: np.ndarray | None = None
    confidence: np.ndarray | None = None
    height_map: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x_px)

    def outside(self, mask: np.ndarray) -> FrameColumns:
        """The columns whose pixel is not in ``mask`` (bool, the frame's shape): burned-in annotations left out."""
        h, w = mask.shape
        rows = np.clip(np.floor(self.y_px).astype(int), 0, h - 1)
        cols = np.clip(np.floor(self.x_px).astype(int), 0, w - 1)
        keep = ~mask[rows, cols]
        per_column = {f.name: getattr(self, f.name)[keep] for f in fields(self)
                      if isinstance(getattr(self, f.name), np.ndarray) and f.name != "height_map"}
        return replace(self, **per_column)


def _network_frame(model, image: np.ndarray, pixel_A: float, settings: ColumnSettings) -> FrameColumns:
    from nanofind.columns.model import predict_columns
    from nanofind.columns.peaks import disc_means

    found = predict_columns(model, image, pixel_A, symmetric=settings.symmetric)
    x, y = found.x_px, found.y_px
    h, w = image.shape
    radius_px = model.radius_A / pixel_A
    edge = (x < 2 * radius_px) | (y < 2 * radius_px) | (x > w - 2 * radius_px) | (y > h - 2 * radius_px)
    # the spacing of a lone column is unknown: a disc diameter keeps tracks and outlines sensible
    spacing_px = float(np.median(_nearest_neighbour(np.column_stack([x, y])))) if len(x) > 1 else 2 * radius_px
    intensity = disc_means(np.asarray(image, np.float32), y - 0.5, x - 0.5, max(1, int(round(radius_px))))
    return FrameColumns(x, y, intensity.astype(np.float64), found.probability, edge, spacing_px,
                        "network", {"model_pixel_size_A": model.pixel_A, "elements": list(model.elements)},
                        found.height, found.element, found.confidence, found.height_map)


def _peaks_frame(image: np.ndarray, spacing_px: float | None, separation_px: float | None,
                 settings: ColumnSettings) -> tuple[FrameColumns, float]:
    from nanofind.columns.peaks import crystal_region, find_columns, lattice_spacing_px

    if spacing_px is None:
        spacing_px = lattice_spacing_px(image)
    region = crystal_region(image, spacing_px) if settings.region == "auto" else None
    peaks = find_columns(image, spacing_px=spacing_px, min_separation_px=separation_px, contrast=settings.contrast,
                         threshold_sigma=settings.threshold_sigma, refine=settings.refine, region=region)
    frame = FrameColumns(peaks.x_px, peaks.y_px, peaks.intensity, peaks.peak, peaks.edge, peaks.spacing_px,
                         peaks.contrast, peaks.settings)
    return frame, 1.0 if region is None else float(region.mean())


def columns_of_file(path: str | Path, out_dir: str | Path, settings: ColumnSettings = ColumnSettings(), *,
                    pixel_size_A: float | None = None) -> dict:
    """Find the columns of one micrograph file (every frame) and write its files; returns its record.

    Raises
    ------
    NanofindInputError
        Unreadable file, no pixel size (in the file or ``pixel_size_A``), no lattice or no columns,
        an unusable model.
    """
    from nanofind._files import write_text_atomic
    from nanofind._per_file import finished_record
    from nanofind.columns.outputs import columns_csv_text, write_height_tiff, write_overlay, write_summary_figure
    from nanofind.columns.peaks import lattice_spacing_px
    from nanofind.columns.tracks import link_frames, surface_columns
    from nanofind.io.micrograph import read_micrograph

    _check(settings)
    network = settings.method == "network"
    model = _model(settings.model) if network else None
    path, out = Path(path), Path(out_dir)
    record_path = out / f"{path.stem}_columns.json"
    wanted = {"settings": asdict(settings), "pixel_size_override_A": pixel_size_A,
              "input_bytes": path.stat().st_size if path.is_file() else None}
    done = finished_record(record_path, wanted) if (out / f"{path.stem}_columns.csv").is_file() else None
    if done is not None:
        return done
    start = time.perf_counter()
    micrograph = read_micrograph(path, pixel_size_A=pixel_size_A)
    pixel = micrograph.pixel_size_A
    if pixel is None:
        raise NanofindInputError("no pixel size in the file; give it with --pixel-size (Å)", str(path))
    frames = micrograph.frames()
    stack = len(frames) > 1
    spacing_px = None if settings.spacing_A is None else settings.spacing_A / pixel
    separation_px = None if settings.min_separation_A is None else settings.min_separation_A / pixel
    found, region_fraction = [], []
    annotations_found = []
    for k, frame in enumerate(frames):
        where = f"{path}" + (f" frame {k}" if stack else "")
        # data bars and scale bars burned into exported images: mirrored away, their columns dropped
        annotations = find_annotations(frame.array, frame.metadata.get("data_bar_rows"))
        image = annotations.cleaned(frame.array) if annotations.found else frame.array
        try:
            if network:
                if k == 0 and spacing_px is None:
                    # a network answers even on noise or film: it runs only where the image repeats
                    lattice_spacing_px(image)
                columns, fraction = _network_frame(model, image, pixel, settings), 1.0
            else:
                columns, fraction = _peaks_frame(image, spacing_px, separation_px, settings)
                spacing_px = columns.spacing_px  # the first frame's measured spacing serves the whole stack
        except NanofindInputError as exc:
            raise NanofindInputError(exc.message, where) from None
        if annotations.found:
            columns = columns.outside(annotations.mask)
            annotations_found.append({"frame": k, **annotations.to_dict()})
        region_fraction.append(fraction)
        if not len(columns):
            raise NanofindInputError("no atomic columns found (no peaks above the noise)" if not network else
                                     "no atomic columns found (the model sees none)", where)
        found.append(columns)
    xy_A = [np.column_stack([c.x_px, c.y_px]) * pixel for c in found]
    first = found[0]
    spacing_A = first.spacing_px * pixel
    track_ids, drifts = (link_frames(xy_A, tolerance=settings.track_tolerance_A, drift_search=0.5 * spacing_A)
                         if stack else (None, [np.zeros(2)]))
    surface = [surface_columns(xy, spacing_A) for xy in xy_A]
    rows = []
    for k, columns in enumerate(found):
        for i in range(len(columns)):
            row = {"x_A": xy_A[k][i, 0], "y_A": xy_A[k][i, 1], "x_px": columns.x_px[i], "y_px": columns.y_px[i],
                   "intensity": float(columns.intensity[i]), "peak": float(columns.peak[i]),
                   "edge": bool(columns.edge[i]), "surface": bool(surface[k][i])}
            if network:
                row.update(height=int(columns.height[i]), element=str(columns.element[i]),
                           confidence=float(columns.confidence[i]))
            if stack:
                row.update(frame=k, track_id=int(track_ids[k][i]))
            rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{path.stem}_columns.csv", columns_csv_text(rows, stack=stack))
    if network:
        write_height_tiff(out / f"{path.stem}_heights.tif", [c.height_map for c in found], pixel)
    shown = first.height.astype(np.float64) if network else first.intensity
    write_overlay(frames[0].array, first.x_px, first.y_px, shown, out / f"{path.stem}_columns.png",
                  radius_px=0.15 * spacing_A / pixel, label="height (atoms)" if network else None)
    neighbour_A = _nearest_neighbour(xy_A[0])
    write_summary_figure(out / f"{path.stem}_columns_summary.png", intensity=first.intensity, neighbour_A=neighbour_A,
                         counts_per_frame=[len(c) for c in found], drift_A=np.array(drifts) if stack else None,
                         heights=first.height if network else None,
                         surface_distance_A=(_surface_distance(xy_A[0], spacing_A, pixel, frames[0].array.shape)
                                             if network else None),
                         title=f"{path.name}: {len(first)} columns" + (f" in frame 0 of {len(found)}" if stack else ""))
    surface_tracks = 0
    if stack:
        values = [c.height.astype(np.float64) for c in found] if network else [c.intensity for c in found]
        surface_tracks = _write_surface_tracks(out / f"{path.stem}_surface_tracks.png", xy_A[0], surface[0], track_ids,
                                               values, title=path.name, network=network)
    record = {**wanted, "input": str(path), "nanofind_version": __version__, "pixel_size_A": pixel,
              "pixel_size_source": micrograph.metadata.get("pixel_size_source"),
              "frames": len(found), "columns_per_frame": [len(c) for c in found],
              "contrast": first.contrast, "spacing_A": round(spacing_A, 4),
              "lattice_fraction_per_frame": [round(v, 4) for v in region_fraction],
              "median_neighbour_A": float(np.nanmedian(neighbour_A)) if len(neighbour_A) else None,
              "tracks": int(max(int(t.max()) for t in track_ids if len(t)) + 1) if stack else None,
              "surface_columns_frame0": int(surface[0].sum()), "surface_tracks_plotted": surface_tracks,
              "drift_A": [[round(float(v), 4) for v in d] for d in drifts] if stack else None,
              "finder": first.settings, "annotations_left_out": annotations_found,
              "seconds": round(time.perf_counter() - start, 3)}
    if network:
        heights = np.concatenate([c.height for c in found[:1]])
        record["model"] = {"folder": settings.model, "task": model.card["task"],
                           "pixel_size_A": model.pixel_A, "elements": list(model.elements),
                           "trained": model.card.get("training", {}).get("train")}
        record["height_histogram_frame0"] = {int(h): int(n) for h, n in zip(*np.unique(heights, return_counts=True),
                                                                            strict=True)}
        record["elements_frame0"] = {str(e): int(n) for e, n in zip(*np.unique(first.element.astype(str),
                                                                                return_counts=True), strict=True)}
    write_text_atomic(record_path, json.dumps(record, indent=2))
    return record


def _surface_distance(xy_A: np.ndarray, spacing_A: float, pixel_A: float, shape: tuple[int, int]) -> np.ndarray:
    """Each column's distance to the outline of the particle its columns fill, Å (0 at the outline).

    The outline is the closing of the columns by discs of 2.5 spacings (grown, then shrunk by as
    much) on the image's pixel grid, so that it runs through the outermost columns and follows
    concave shapes and separate particles.
    """
    from scipy import ndimage as ndi

    h, w = shape
    points = np.zeros((h, w), dtype=bool)
    rows = np.clip((xy_A[:, 1] / pixel_A).astype(np.intp), 0, h - 1)
    cols = np.clip((xy_A[:, 0] / pixel_A).astype(np.intp), 0, w - 1)
    points[rows, cols] = True
    reach_px = 2.5 * spacing_A / pixel_A
    pad = int(np.ceil(reach_px)) + 2  # the image's border is not an outline
    grown = ndi.distance_transform_edt(~np.pad(points, pad)) <= reach_px
    closed = ndi.distance_transform_edt(grown) > reach_px
    inside = ndi.distance_transform_edt(closed | np.pad(points, pad))
    return (inside[rows + pad, cols + pad] - 1.0).clip(0) * pixel_A


_MODELS: dict = {}


def _model(name: str):
    """The height model ``name`` (loaded once per process)."""
    from nanofind.columns.model import load_height_model

    if name not in _MODELS:
        _MODELS[name] = load_height_model(name)
    return _MODELS[name]


def _write_surface_tracks(path: Path, xy0: np.ndarray, surface0: np.ndarray, track_ids: list[np.ndarray],
                          values: list[np.ndarray], *, title: str, network: bool = False) -> int:
    """The figure of the first frame's surface columns through the series; returns how many it shows."""
    from nanofind.columns.outputs import write_track_figure
    from nanofind.columns.tracks import track_table

    ids, series = track_table(track_ids, values)
    wanted = track_ids[0][surface0]
    keep = np.isin(ids, wanted)
    if not keep.any():
        return 0
    centre = xy0.mean(0)
    angle_of = dict(zip(track_ids[0], np.arctan2(*(xy0 - centre).T[::-1]), strict=True))
    order = np.argsort([angle_of[t] for t in ids[keep]], kind="stable")
    write_track_figure(path, series[keep][order],
                       quantity="height (atoms)" if network else "intensity (image units)",
                       title=f"{title}: surface columns of frame 0 through the series", lines=network)
    return int(keep.sum())


def columns_files(inputs: list[str], out_dir: str | Path, settings: ColumnSettings = ColumnSettings(), *,
                  pixel_size_A: float | None = None, on_file=None, quiet: bool = False) -> tuple[list[dict], list[str]]:
    """Run :func:`columns_of_file` on every file (folders: the micrographs in them).

    Returns the records and the failures (one line each). A single file that fails raises instead.
    """
    from nanofind._per_file import each_file

    _check(settings)
    if settings.method == "network":
        _model(settings.model)  # an unusable model fails the whole batch at once, before any file
    return each_file(inputs, out_dir, "columns",
                     lambda path, out: columns_of_file(path, out, settings, pixel_size_A=pixel_size_A),
                     on_file=on_file, quiet=quiet)
