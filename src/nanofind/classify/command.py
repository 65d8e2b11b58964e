"""``nanofind classify``: defect classes of particle crops, training classifiers, cutting training crops.

- ``nanofind classify IMAGES... -o OUT [--model default|DIR]``: every image (or image in a
  folder) is one region — a crop around one particle or one empty area — and gets a row in
  ``OUT/classes.csv`` with columns ``file,class,probability,p_fault,p_no_fault,p_misoriented,
  p_agglomerate,p_empty``.
- ``nanofind classify crops DATASET.h5... -o DIR``: labelled crops of simulated datasets, cut as
  ``nanofind analyze`` cuts particles (:mod:`nanofind.classify.training_data`).
- ``nanofind classify train DIR... --method rf|gbt|cnn|gbt+cnn -o MODEL_DIR``: a classifier from folders
  with one sub-folder per class (what ``classify crops`` writes, or crops of one's own).
- ``nanofind classify train DATA... --labels labels.csv --method standard|two-step|coteaching|elr``:
  an image classifier of any classes from a ``file,label`` table whose labels may be wrong
  (:mod:`nanofind.classify.image_classifier`); ``classify IMAGES --model DIR`` uses it alike.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from nanofind.classify.classes import CLASS_NAMES
from nanofind.classify.crops import MAX_CROP_PX, MIN_CROP_PX
from nanofind.errors import NanofindInputError

#: Columns of ``classes.csv``.
CSV_COLUMNS = ("file", "class", "probability", *(f"p_{c}" for c in CLASS_NAMES))


def read_crop(path: Path) -> np.ndarray:
    """One crop as a 2D float32 array; a clear error when unreadable, too small or too large."""
    from nanofind.io.micrograph import read_micrograph

    try:
        frames = read_micrograph(path, max_pixels=MAX_CROP_PX * MAX_CROP_PX * 4, min_side_px=MIN_CROP_PX).frames()
    except NanofindInputError as exc:
        if "pixels on each side" in str(exc):
            raise NanofindInputError(f"{path}: crops need at least {MIN_CROP_PX} px on each side "
                                     f"({exc.message})") from None
        raise
    image = frames[0].array
    if min(image.shape) < MIN_CROP_PX:
        raise NanofindInputError(f"{path}: crop of {image.shape[1]} x {image.shape[0]} px; crops need at least "
                                 f"{MIN_CROP_PX} px on each side")
    return image


def _load_any_classifier(model: str | None):
    """The classifier a ``--model`` names, its class names and its image reader.

    Defect classifiers (``default`` and ``classify train --method rf|gbt|cnn|gbt+cnn``) read crops of at
    least 32 px; image classifiers (``classify train --labels``) read any image of 8 px or more.
    """
    from nanofind.classify import image_classifier as generic
    from nanofind.classify.model import load_classifier, read_classifier_card

    if model not in (None, "default") and read_classifier_card(model).get("task") == generic.TASK:
        classifier = generic.load_image_classifier(model)
        return classifier, classifier.classes, generic.read_image
    return load_classifier(model), list(CLASS_NAMES), read_crop


def classify_files(inputs: list[str], out_dir: str | Path, *, model: str | None = None, report=print,
                   quiet: bool = False) -> tuple[Path, list[str]]:
    """Classify image files into ``out_dir/classes.csv``; returns its path and the failures.

    Columns: ``file,class,probability`` and ``p_<class>`` per class of the model (for the defect
    classifier: :data:`CSV_COLUMNS`).
    """
    from nanofind._files import write_text_atomic
    from nanofind._progress import ProgressBar
    from nanofind.segment.batch import expand_inputs

    classifier, classes, read = _load_any_classifier(model)
    files = expand_inputs(inputs)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanofindInputError(f"{out}: cannot create the folder ({exc.strerror or exc})") from None
    names, crops, failures = [], [], []
    with ProgressBar("classify", len(files), enabled=not quiet) as bar:
        for path in files:
            try:
                crops.append(read(path))
                names.append(str(path))
            except NanofindInputError as exc:
                failures.append(str(exc))
                report(f"nanofind: error: {exc}")
            bar.advance()
    probabilities = _predict_in_blocks(classifier, crops, quiet=quiet)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(("file", "class", "probability", *(f"p_{c}" for c in classes)))
    for name, p in zip(names, probabilities, strict=True):
        k = int(np.argmax(p))
        writer.writerow([name, classes[k], f"{p[k]:.4f}", *(f"{v:.4f}" for v in p)])
    target = out / "classes.csv"
    write_text_atomic(target, text.getvalue())
    return target, failures


#: Crops per call of the classifier in ``nanofind classify`` (a multiple of the networks' batches), so
#: that a long run shows its progress.
PREDICT_BLOCK = 1024


def _predict_in_blocks(classifier, crops: list, *, quiet: bool) -> np.ndarray:
    """``classifier.predict_proba(crops)`` block by block under a progress bar (the same numbers)."""
    from nanofind._progress import ProgressBar

    if len(crops) <= PREDICT_BLOCK:
        return classifier.predict_proba(crops)
    parts = []
    with ProgressBar("classifying", len(crops), enabled=not quiet) as bar:
        for start in range(0, len(crops), PREDICT_BLOCK):
            parts.append(classifier.predict_proba(crops[start:start + PREDICT_BLOCK]))
            bar.advance(len(parts[-1]))
    return np.concatenate(parts)


def read_crop_folders(folders: list[str]) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Crops and class names from folders with one sub-folder per class (:data:`CLASS_NAMES`)."""
    from nanofind.segment.batch import expand_inputs

    crops, labels, files = [], [], []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise NanofindInputError(f"{folder}: not a folder of class sub-folders ({', '.join(CLASS_NAMES)})")
        found = [d for d in sorted(folder.iterdir()) if d.is_dir() and d.name in CLASS_NAMES]
        if not found:
            raise NanofindInputError(f"{folder}: has none of the class sub-folders {', '.join(CLASS_NAMES)}")
        for sub in found:
            for path in expand_inputs([sub]):
                crops.append(read_crop(path))
                labels.append(sub.name)
                files.append(str(path))
    if len(set(labels)) < 2:
        raise NanofindInputError("training needs crops of at least two classes")
    return crops, labels, files


def crop_metadata(folders: list[str]) -> dict[str, dict]:
    """Rows of the ``crops.csv`` files beside training crops, by crop path."""
    rows = {}
    for folder in map(Path, folders):
        table = folder / "crops.csv"
        if table.is_file():
            with open(table, newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    rows[str(folder / row["file"])] = row
    return rows
