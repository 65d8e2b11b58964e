"""Mirror labelling of particle handedness (seed 004, ch. 5).

Every particle image of a set is labelled with the dominant hand; then every image is mirrored
(left-right) and given the other hand. The classes come out balanced, and the minority-handed
particles carry wrong labels, in a share equal to theirs. For experiments, an *ideal* set is made
from a clean all-dominant set: a chosen random fraction of the originals is mirrored first (they
become truly minority-handed but are still labelled dominant), so that which labels are wrong is
known exactly.

``nanofind dataset mirror-label IMAGES... --dominant right -o OUT`` writes ``OUT/images/<stem>.tif``
and ``OUT/images/<stem>_mirror.tif``, ``OUT/labels.csv`` (``file,label``), ``OUT/truth.csv``
(``file,label,true_label,wrong,source,mirrored``) and ``OUT/mirror_label.json`` (the settings).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanofind.errors import NanofindInputError

__all__ = ["HANDS", "MirrorRecord", "mirror_label", "write_mirror_labelled"]

#: The two classes; each is the other's mirror image.
HANDS = ("right", "left")
#: Smallest image side, px, and most pixels per file (all frames) that ``write_mirror_labelled`` reads.
MIN_SIDE_PX = 8
MAX_PIXELS_PER_FILE = 2**26
#: Columns of ``truth.csv``.
TRUTH_COLUMNS = ("file", "label", "true_label", "wrong", "source", "mirrored")


@dataclass(frozen=True)
class MirrorRecord:
    """One item of a mirror-labelled set.

    Attributes
    ----------
    source : int
        Index of the original image the item comes from.
    mirrored : bool
        Whether the item is the mirror image of the (possibly pre-flipped) original.
    label : str
        The label the set gives it: the dominant hand for originals, the other hand for mirrors.
    true_label : str
        Its actual hand.
    wrong : bool
        ``label != true_label``.
    """

    source: int
    mirrored: bool
    label: str
    true_label: str
    wrong: bool


def _other(hand: str) -> str:
    return HANDS[1 - HANDS.index(hand)]


def _check_settings(dominant: str, minority_fraction: float) -> float:
    if dominant not in HANDS:
        raise NanofindInputError(f"must be 'right' or 'left', got {dominant!r}", "dominant")
    try:
        fraction = float(minority_fraction)
    except (TypeError, ValueError):
        raise NanofindInputError(f"must be a number between 0 and 1, got {minority_fraction!r}",
                                 "minority_fraction") from None
    if not 0.0 <= fraction <= 1.0:  # also refuses NaN
        raise NanofindInputError(f"must be between 0 and 1, got {minority_fraction}", "minority_fraction")
    return fraction


def mirror_label(images: Sequence[np.ndarray], *, dominant: str = "right", minority_fraction: float = 0.0,
                 rng: int | np.random.Generator | None = None) -> tuple[list[np.ndarray], list[MirrorRecord]]:
    """Label every image with the dominant hand and its left-right mirror with the other.

    Parameters
    ----------
    images : sequence of (M, N) ndarray
        The originals, rows along y; all taken to be of the ``dominant`` hand.
    dominant : {"right", "left"}
        The hand every original is labelled with.
    minority_fraction : float
        Share of originals, in [0, 1], flipped before labelling, so that they are truly of the other
        hand but still labelled ``dominant``: ``round(minority_fraction * len(images))`` of them
        (Python's rounding, half to even), chosen at random. 0 (default) flips none.
    rng : int or numpy.random.Generator, optional
        Chooses the flipped originals (``np.random.default_rng(rng)``).

    Returns
    -------
    items : list of (M, N) ndarray
        Two per original, in order: the original (flipped when chosen) and its mirror
        ``np.fliplr(original)``, columns reversed. Flipped arrays are views of the inputs.
    records : list of MirrorRecord
        One per item: source index, whether mirrored, label, true label and whether it is wrong.
        Exactly ``2 * round(minority_fraction * len(images))`` are wrong.

    Raises
    ------
    NanofindInputError
        ``dominant`` not "right" or "left", ``minority_fraction`` outside [0, 1], or an image that
        is not 2D.

    Examples
    --------
    >>> items, records = mirror_label([np.array([[1.0, 2.0]])], dominant="left")
    >>> items[1].tolist(), [r.label for r in records]
    ([[2.0, 1.0]], ['left', 'right'])
    """
    fraction = _check_settings(dominant, minority_fraction)
    arrays = [np.asarray(image) for image in images]
    for k, array in enumerate(arrays):
        if array.ndim != 2:
            raise NanofindInputError(f"image {k} must be a 2D array, got shape {array.shape}", "images")
    minority = _other(dominant)
    n = len(arrays)
    flipped = set(np.random.default_rng(rng).permutation(n)[:round(fraction * n)].tolist())
    items, records = [], []
    for k, array in enumerate(arrays):
        original = np.fliplr(array) if k in flipped else array
        truth = minority if k in flipped else dominant
        for mirrored, image, label, true_label in ((False, original, dominant, truth),
                                                   (True, np.fliplr(original), minority, _other(truth))):
            items.append(image)
            records.append(MirrorRecord(k, mirrored, label, true_label, label != true_label))
    return items, records


def _read_originals(files: Sequence[Path], progress: Callable[[], None] | None):
    """The 2D frames of ``files`` (Micrograph objects) and one message per unreadable file."""
    from nanofind.io.micrograph import read_micrograph

    frames, failures = [], []
    for path in files:
        try:
            frames += read_micrograph(path, max_pixels=MAX_PIXELS_PER_FILE, min_side_px=MIN_SIDE_PX).frames()
        except NanofindInputError as exc:
            failures.append(str(exc))
        if progress is not None:
            progress()
    return frames, failures


def _write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically; an OSError becomes a NanofindInputError naming ``path``."""
    from nanofind._files import write_atomic

    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _csv_text(rows: list[Sequence]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()


def write_mirror_labelled(inputs: Sequence[str | Path], out_dir: str | Path, *, dominant: str,
                          minority_fraction: float = 0.0, seed: int | None = 0,
                          progress: Callable[[], None] | None = None) -> dict:
    """Read particle images and write their mirror-labelled set to ``out_dir``.

    Parameters
    ----------
    inputs : sequence of str or Path
        Image files and/or folders of them (any format nanofind reads); every frame of a stack is
        one original.
    out_dir : str or Path
        Receives ``images/<stem>.tif`` and ``images/<stem>_mirror.tif`` (float32 TIFF, with the
        pixel size as centimetre resolution tags when known), ``labels.csv`` (``file,label``,
        files relative to ``out_dir``), ``truth.csv`` (``file,label,true_label,wrong,source,mirrored``)
        and ``mirror_label.json`` (settings and counts). Existing files of those names are replaced.
    dominant, minority_fraction
        As for :func:`mirror_label`.
    seed : int, optional
        Chooses the pre-flipped originals; the same inputs and seed give the same set.
    progress : callable, optional
        Called with no argument after each input file is read.

    Returns
    -------
    dict
        What ``mirror_label.json`` records, plus ``path`` (``out_dir``) and ``skipped`` (one
        message per unreadable file, which is left out).

    Raises
    ------
    NanofindInputError
        Bad settings, no readable image, two outputs with the same name, or an unwritable ``out_dir``.
    """
    import tifffile

    from nanofind._files import write_atomic
    from nanofind._version import __version__
    from nanofind.segment.batch import expand_inputs

    _check_settings(dominant, minority_fraction)
    files = expand_inputs(inputs)
    if not files:
        raise NanofindInputError(f"no images found in {', '.join(map(str, inputs)) or 'the inputs'}")
    frames, failures = _read_originals(files, progress)
    if not frames:
        raise NanofindInputError(failures[0] if len(failures) == 1 else
                                 f"none of the {len(files)} input files could be read; first: {failures[0]}")
    names: dict[str, str] = {}
    for frame in frames:
        for name in (frame.name, f"{frame.name}_mirror"):
            if name in names:
                raise NanofindInputError(f"{frame.source} and {names[name]} both give images/{name}.tif; "
                                         "rename one")
            names[name] = str(frame.source)
    items, records = mirror_label([f.array for f in frames], dominant=dominant,
                                  minority_fraction=minority_fraction, rng=seed)
    out = Path(out_dir)
    try:
        (out / "images").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanofindInputError(f"{out}: cannot create the folder ({exc.strerror or exc})") from None
    labels, truth = [("file", "label")], [TRUTH_COLUMNS]
    for image, r in zip(items, records, strict=True):
        frame = frames[r.source]
        rel = f"images/{frame.name}{'_mirror' if r.mirrored else ''}.tif"
        pixel = frame.pixel_size_A
        tags = {"resolution": (1e8 / pixel,) * 2, "resolutionunit": "CENTIMETER"} if pixel else {}
        data = np.ascontiguousarray(image, dtype=np.float32)
        write_atomic(out / rel, lambda tmp, data=data, tags=tags: tifffile.imwrite(tmp, data, **tags))
        index = frame.metadata.get("frame")
        source = str(frame.source) + ("" if index is None else f"#{index}")
        labels.append((rel, r.label))
        truth.append((rel, r.label, r.true_label, str(r.wrong).lower(), source, str(r.mirrored).lower()))
    _write_text(out / "labels.csv", _csv_text(labels))
    _write_text(out / "truth.csv", _csv_text(truth))
    record = {"kind": "mirror_labelled", "nanofind_version": __version__, "dominant": dominant,
              "minority": _other(dominant), "minority_fraction": float(minority_fraction), "seed": seed,
              "originals": len(frames), "items": len(items),
              "flipped_originals": sum(not r.mirrored and r.wrong for r in records),
              "wrong": sum(r.wrong for r in records),
              "labels": {hand: sum(r.label == hand for r in records) for hand in HANDS},
              "skipped_files": len(failures)}
    _write_text(out / "mirror_label.json", json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return {**record, "path": str(out), "skipped": failures}
