"""``nanofind library build`` and ``nanofind match``: files in, tables and figures out.

``match`` writes into OUT:

- ``matches.csv``: ``query,rank,prototype,formula,zone,ssim,emd,mse``, the ``--top`` best entries
  of every query, ranked by ``--metric`` (metrics not asked for are empty);
- ``<stem>_matches.png``: the query beside its best entries, each registered onto it, with scores;
- ``<stem>_match.json``: the record (pixel size used and how it was found, each match's rotation,
  mirror, fitted pixel size, tilt smear (length Å and direction in the query, degrees from +x towards
  +y), correlation, timings, and ``convincing``: whether the best SSIM reaches
  :data:`UNSURE_SSIM`); a rerun with the same settings reuses it;
- with ``--window PX``: ``<stem>_motifs.csv`` (one row per tile: its centre and best entry) and
  ``<stem>_motifs.png`` (the image with each tile coloured by its best prototype and zone).
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nanofind.errors import NanofindInputError

CSV_COLUMNS = ("query", "rank", "prototype", "formula", "zone", "ssim", "emd", "mse")
#: Smallest ``--window``, px: a tile must hold several cells of a lattice.
MIN_WINDOW_PX = 64
#: Most tiles a motif map may have (each is a full match, about a second on 2 cores).
MAX_TILES = 400
#: Tiles whose best SSIM is lower are drawn as unmatched in the motif map (a correct entry on a
#: moderate-dose image reaches 0.8–0.9; unrelated ones stay below 0.3).
UNSURE_SSIM = 0.5


@dataclass(frozen=True)
class MatchSettings:
    """What ``nanofind match`` does with each image."""

    library: str
    metric: str = "all"
    top: int = 10
    shortlist: int = 16
    window_px: int | None = None


def _check(settings: MatchSettings) -> None:
    from nanofind.library.match import METRICS

    if settings.metric not in (*METRICS, "all"):
        raise NanofindInputError(f"must be ssim, emd, mse or all, got {settings.metric!r}", "--metric")
    if not 1 <= settings.top <= 100:
        raise NanofindInputError(f"must be 1 to 100, got {settings.top}", "--top")
    if not 1 <= settings.shortlist <= 500:
        raise NanofindInputError(f"must be 1 to 500, got {settings.shortlist}", "--shortlist")
    if settings.window_px is not None and settings.window_px < MIN_WINDOW_PX:
        raise NanofindInputError(f"must be at least {MIN_WINDOW_PX} px, got {settings.window_px}", "--window")


def _fmt(value: float) -> str:
    return "" if not np.isfinite(value) else f"{value:.5g}"


def match_rows(record: dict) -> list[dict]:
    """The CSV rows of one query's record (its ``matches``, best first)."""
    stem = Path(record["file"]).stem
    return [{"query": stem, "rank": k + 1, "prototype": m["prototype"], "formula": m["formula"], "zone": m["zone"],
             "ssim": _fmt(m["ssim"]), "emd": _fmt(m["emd"]), "mse": _fmt(m["mse"])}
            for k, m in enumerate(record["matches"])]


def _csv_text(rows: list[dict], fields) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _match_record(library, m) -> dict:
    return {"prototype": library.prototype[m.entry], "formula": library.formula[m.entry],
            "zone": library.zone[m.entry], "entry": int(m.entry), "ssim": m.ssim, "emd": m.emd, "mse": m.mse,
            "rotation_deg": round(m.rotation_deg, 3), "mirror": m.mirror, "pixel_size_A": round(m.pixel_size_A, 5),
            "correlation": round(m.correlation, 4), "shortlist_score": round(m.shortlist_score, 4),
            "smear_A": round(m.smear_A, 3), "smear_deg": round(m.smear_deg, 1),
            "variant": library.variants[m.variant]}


def match_file(path: str | Path, out_dir: str | Path, library, settings: MatchSettings, *,
               pixel_size_A: float | None = None) -> dict:
    """Match one micrograph (its first frame) and write its files; returns its record."""
    from nanofind._files import write_text_atomic
    from nanofind._per_file import finished_record
    from nanofind.io.annotations import find_annotations
    from nanofind.io.micrograph import read_micrograph
    from nanofind.library.match import match_image

    path, out = Path(path), Path(out_dir)
    record_path = out / f"{path.stem}_match.json"
    wanted = {"settings": asdict(settings), "pixel_size_override_A": pixel_size_A,
              "input_bytes": path.stat().st_size if path.is_file() else None}
    done = finished_record(record_path, wanted)
    if done is not None:
        return done
    started = time.perf_counter()
    micrograph = read_micrograph(path, pixel_size_A=pixel_size_A)
    frame = micrograph.frames()[0]
    annotations = find_annotations(frame.array, frame.metadata.get("data_bar_rows"))  # mirrored away
    image = np.asarray(annotations.cleaned(frame.array) if annotations.found else frame.array, dtype=np.float64)
    pixel = micrograph.pixel_size_A
    try:
        if settings.window_px is not None:
            _tiles(image.shape, settings.window_px, pixel)  # a window that cannot work fails before any match
        matches, timing = match_image(library, image, pixel, metric=settings.metric, top=settings.top,
                                      shortlist_size=max(settings.shortlist, settings.top))
    except NanofindInputError as exc:  # name the file; keep the option the message is about
        raise NanofindInputError(f"{exc.field}: {exc.message}" if exc.field else exc.message, str(path)) from None
    _write_montage(out / f"{path.stem}_matches.png", image, pixel, library, matches[:6], path.name)
    best_ssim = max((m.ssim for m in matches if np.isfinite(m.ssim)), default=float("nan"))
    record = {**wanted, "file": str(path), "pixel_size_A": pixel,
              # a right entry reaches SSIM 0.8–0.9 on moderate-dose images, unrelated ones stay below 0.3;
              # None when SSIM was not computed (--metric emd or mse)
              "convincing": bool(best_ssim >= UNSURE_SSIM) if np.isfinite(best_ssim) else None,
              "pixel_size_source": "file or --pixel-size" if pixel is not None else "fitted to each entry's lattice",
              "matches": [_match_record(library, m) for m in matches],
              "timing_s": {k: round(v, 4) for k, v in timing.items() if k.endswith("seconds")},
              "library": {"file": library.source, "entries": len(library), "renderer": library.renderer},
              "annotations_left_out": annotations.to_dict() if annotations.found else None}
    if settings.window_px is not None:
        record["motifs"] = _motif_map(path, out, image, pixel, library, settings)
    record["seconds"] = round(time.perf_counter() - started, 3)
    write_text_atomic(record_path, json.dumps(record, indent=1, default=float))
    return record


def _tiles(shape: tuple[int, int], window_px: int, pixel_size_A: float | None = None) -> list[tuple[int, int]]:
    """Top-left corners of the tiles: side ``window_px``, half-overlapping, covering the image.

    Refused in one line: tiles larger than the image or narrower than a lattice needs, or so many
    that the map would take hours.
    """
    from nanofind.library.match import MIN_FIELD_A

    h, w = shape
    if pixel_size_A is not None and window_px * pixel_size_A < MIN_FIELD_A:
        raise NanofindInputError(f"{window_px} px is {window_px * pixel_size_A:.3g} Å at {pixel_size_A:.3g} Å/px; "
                                 f"a tile must be at least {MIN_FIELD_A:.0f} Å across", "--window")
    if window_px > min(h, w):
        raise NanofindInputError(f"{window_px} px is larger than the image ({w}×{h} px)", "--window")
    step = max(1, window_px // 2)

    def starts(n):
        s = list(range(0, n - window_px + 1, step))
        return s if s[-1] == n - window_px else [*s, n - window_px]

    tiles = [(r, c) for r in starts(h) for c in starts(w)]
    if len(tiles) > MAX_TILES:
        raise NanofindInputError(f"{window_px} px makes {len(tiles)} tiles of this {w}×{h} px image (each about a "
                                 f"second); at most {MAX_TILES}: use a larger window", "--window")
    return tiles


def _motif_map(path: Path, out: Path, image: np.ndarray, pixel: float | None, library, settings: MatchSettings):
    """Match every tile; write the motif table and figure; returns a summary."""
    from nanofind._files import write_text_atomic
    from nanofind.library.match import match_image

    rows = []
    for r, c in _tiles(image.shape, settings.window_px, pixel):
        tile = image[r:r + settings.window_px, c:c + settings.window_px]
        try:
            best, _ = match_image(library, tile, pixel, metric=settings.metric, top=1,
                                  shortlist_size=settings.shortlist)
        except NanofindInputError:
            best = []  # no lattice in this tile (amorphous film, vacuum)
        m = best[0] if best else None
        rows.append({"row_px": r, "col_px": c, "x_px": c + settings.window_px / 2, "y_px": r + settings.window_px / 2,
                     "prototype": library.prototype[m.entry] if m else "",
                     "formula": library.formula[m.entry] if m else "",
                     "zone": library.zone[m.entry] if m else "", "ssim": _fmt(m.ssim) if m else "",
                     "emd": _fmt(m.emd) if m else "", "mse": _fmt(m.mse) if m else ""})
    write_text_atomic(out / f"{path.stem}_motifs.csv", _csv_text(rows, rows[0]))
    _write_motif_figure(out / f"{path.stem}_motifs.png", image, rows, settings.window_px, path.name)
    labels = [f"{r['prototype']} {r['zone']}" for r in rows if r["prototype"]]
    counts = {k: labels.count(k) for k in sorted(set(labels))}
    return {"tiles": len(rows), "window_px": settings.window_px, "motifs": counts}


def _write_montage(target: Path, image, pixel, library, matches, title: str) -> None:
    """The query and its best registered entries side by side, with their scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nanofind._files import write_atomic

    n = len(matches) + 1
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 3.0))
    axes = np.atleast_1d(axes)
    axes[0].imshow(image, cmap="gray")
    scale = f"{pixel:.3g} Å/px" if pixel else "pixel size fitted"
    scored = [m.ssim for m in matches if np.isfinite(m.ssim)]
    unsure = bool(scored) and max(scored) < UNSURE_SSIM
    axes[0].set_title(f"{title}\n{scale}" + (f"\nno convincing match (SSIM < {UNSURE_SSIM})" if unsure else ""),
                      fontsize=8, color="firebrick" if unsure else "black")
    if matches and matches[0].window is not None:
        axes[0].set_xlabel("query (whole image)", fontsize=7)
    for k, (ax, m) in enumerate(zip(axes[1:], matches, strict=False)):
        # the query's window and the entry registered onto it, side by side
        both = np.hstack([_unit(m.window), np.full((m.window.shape[0], 2), 1.0), _unit(m.aligned)])
        ax.imshow(both, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{k + 1}. {library.label(m.entry)}\nSSIM {_short(m.ssim)}  EMD {_short(m.emd)} Å  "
                     f"MSE {_short(m.mse)}", fontsize=7)
        smear = f", smeared {m.smear_A:.2g} Å" if m.smear_A > 0 else ""
        ax.set_xlabel(f"query window | entry, turned {m.rotation_deg:.1f}°{' mirrored' if m.mirror else ''}{smear}",
                      fontsize=6)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    write_atomic(target, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def _short(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "–"


def _unit(x: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(x, [0.5, 99.5])
    return np.clip((x - lo) / max(hi - lo, 1e-12), 0, 1)


def _write_motif_figure(target: Path, image, rows: list[dict], window_px: int, title: str) -> None:
    """Each pixel coloured by the best entry of the tile whose centre is nearest; unsure tiles grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from nanofind._files import write_atomic

    def label_of(r):
        sure = r["prototype"] and r["ssim"] != "" and float(r["ssim"]) >= UNSURE_SSIM
        return f"{r['prototype']} {r['formula']} {r['zone']}" if sure else f"no match with SSIM ≥ {UNSURE_SSIM}"

    labels = [label_of(r) for r in rows]
    names = sorted(set(labels), key=lambda k: (k.startswith("no match"), k))
    colours = {k: (0.5, 0.5, 0.5, 1.0) if k.startswith("no match") else plt.cm.tab10(i % 10)
               for i, k in enumerate(names)}
    h, w = image.shape
    centres = np.array([[r["y_px"], r["x_px"]] for r in rows])
    yy, xx = np.mgrid[0:h:4, 0:w:4]  # every 4th pixel is plenty for a map of tiles
    nearest = np.argmin((yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2, axis=-1)
    overlay = np.array([colours[labels[k]] for k in range(len(rows))])[nearest]
    overlay[..., 3] = 0.35
    fig, ax = plt.subplots(figsize=(8.5, 6))
    ax.imshow(image, cmap="gray")
    ax.imshow(overlay, extent=(0, w, h, 0), interpolation="nearest")
    ax.legend(handles=[Patch(color=colours[k], alpha=0.6, label=k) for k in names], fontsize=7,
              loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{title}: best entry per {window_px}-px tile (half-overlapping)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    write_atomic(target, lambda p: fig.savefig(p, dpi=100, format="png", bbox_inches="tight"))
    plt.close(fig)


def match_files(inputs: list[str], out_dir: str | Path, settings: MatchSettings, *, pixel_size_A: float | None = None,
                on_file=None, quiet: bool = False) -> tuple[list[dict], list[str]]:
    """Match every micrograph of ``inputs`` (folders: the micrographs in them); write ``matches.csv``.

    Returns the records and the failures (one line each). A single file that fails raises instead.
    """
    from nanofind._files import write_text_atomic
    from nanofind._per_file import each_file
    from nanofind.library.store import read_library

    _check(settings)
    library = read_library(settings.library)
    records, failures = each_file(inputs, out_dir, "match",
                                  lambda path, out: match_file(path, out, library, settings, pixel_size_A=pixel_size_A),
                                  on_file=on_file, quiet=quiet)
    write_text_atomic(Path(out_dir) / "matches.csv",
                      _csv_text([row for record in records for row in match_rows(record)], CSV_COLUMNS))
    return records, failures


def build_command(spec_path: str | Path, output: str | Path, *, workers: int | None = None, scheduler=None,
                  quiet: bool = False) -> dict:
    """``nanofind library build``: load the spec, build with a progress bar; returns the summary."""
    from nanofind._progress import ProgressBar
    from nanofind.library.build import build_library, prototype_sources
    from nanofind.library.spec import load_spec

    spec = load_spec(spec_path)
    total = len(prototype_sources(spec))
    started = time.perf_counter()
    with ProgressBar("library", total, enabled=not quiet) as bar:
        state = {"done": 0}

        def progress(done, _total):
            bar.advance(done - state["done"])
            state["done"] = done

        summary = build_library(spec, output, workers=workers, scheduler=scheduler, progress=progress)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary
