"""Column-height models (seed 001): files, loading and prediction on micrographs of any pixel size.

A model is a folder with ``weights.safetensors`` (the network) and ``card.json`` (what it is and
what made it: ``task`` ``column_heights``, the architecture, the pixel size it works at in Å, the
sublattices' elements, the height classes per sublattice, the column disc radius in Å, the logit
temperature that calibrates its confidence, and the training record). The shipped model
(``default``) is CeO2 viewed along [110] (:data:`DEFAULT_DIR`; its card says how it was trained,
calibrated and scored; ``scripts/train-column-model.sh`` reproduces it).

Prediction resamples the micrograph to the model's pixel size, normalises it to zero mean and unit
deviation, runs the network in tiles, finds the columns as the peaks of the column probability
(1 − background) and reads each column's height, element and confidence from the class mass in its
disc (:mod:`nanofind.columns.heights`). Positions come back in the micrograph's pixels, origin at
the top-left corner of the top-left pixel, x along columns and y along rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanofind._version import __version__
from nanofind.errors import NanofindInputError

TASK = "column_heights"
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "card.json"
DEFAULT_DIR = Path(__file__).with_name("default_model")
#: Largest image the network sees at once, px at the model's pixel size; larger ones go in tiles.
TILE_PX = 1024
#: Tiles overlap by this much, px at the model's pixel size; each keeps only its inner part.
TILE_OVERLAP_PX = 32
#: Largest micrograph resampled to the model's pixel size, px (a 8192² frame at half the model's pixel).
MAX_MODEL_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class HeightModel:
    """A column-height network with its card."""

    net: object
    card: dict

    @property
    def pixel_A(self) -> float:
        return float(self.card["pixel_size_A"])

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(self.card["elements"])

    @property
    def max_height(self) -> int:
        return int(self.card["max_height"])

    @property
    def radius_A(self) -> float:
        return float(self.card["column_radius_A"])


@dataclass(frozen=True)
class ColumnPrediction:
    """Columns a height model found in one micrograph.

    ``x_px``, ``y_px``: positions in the micrograph's pixels; ``height`` (atoms), ``element``
    (names), ``confidence`` (0–1, the height class's share of the disc) and ``probability`` (the
    peak column probability); ``height_map``: the most likely height per pixel of the micrograph
    (0 where background is likelier than any column), uint8.
    """

    x_px: np.ndarray
    y_px: np.ndarray
    height: np.ndarray
    element: np.ndarray
    confidence: np.ndarray
    probability: np.ndarray
    height_map: np.ndarray


def height_card(*, architecture: str, width: int, pixel_A: float, elements: tuple[str, ...], max_height: int,
                radius_A: float, min_separation_A: float, temperature: float = 1.0, training: dict | None = None
                ) -> dict:
    """The card of a height model (see the module docstring)."""
    return {"task": TASK, "nanofind_version": __version__, "architecture": architecture, "width": int(width),
            "pixel_size_A": float(pixel_A), "elements": list(elements), "max_height": int(max_height),
            "classes": 1 + len(elements) * int(max_height), "column_radius_A": float(radius_A),
            "min_separation_A": float(min_separation_A), "temperature": float(temperature), "training": training or {}}


def save_height_model(directory: str | Path, net, card: dict) -> Path:
    """Write the network's weights (safetensors) and ``card`` into ``directory`` (created)."""
    from safetensors.torch import save_file

    from nanofind._files import write_atomic, write_text_atomic

    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanofindInputError(f"cannot create the folder ({exc.strerror or exc})", str(directory)) from None
    weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    write_atomic(directory / WEIGHTS_FILE, lambda tmp: save_file(weights, str(tmp)))
    write_text_atomic(directory / CARD_FILE, json.dumps(card, indent=2) + "\n")
    return directory


def load_height_model(directory: str | Path | None = None) -> HeightModel:
    """A height model folder (``None`` or ``"default"``: the shipped one); one clear error if unusable."""
    from safetensors.torch import load_file

    from nanofind.columns.training import build_height_network

    directory = DEFAULT_DIR if directory in (None, "default") else Path(directory)
    card_path = directory / CARD_FILE
    if not card_path.is_file():
        raise NanofindInputError(f"not a model folder (needs {CARD_FILE} and {WEIGHTS_FILE})", str(directory))
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NanofindInputError(f"unreadable card ({exc})", str(card_path)) from None
    if not isinstance(card, dict) or card.get("task") != TASK:
        task = card.get("task") if isinstance(card, dict) else None
        raise NanofindInputError(f"a model for {task!r}, not for {TASK!r}", str(directory))
    needed = ("architecture", "pixel_size_A", "elements", "max_height", "column_radius_A", "min_separation_A")
    missing = [k for k in needed if k not in card]
    if missing:
        raise NanofindInputError(f"the card lacks {', '.join(missing)}", str(card_path))
    try:
        net = build_height_network(1 + len(card["elements"]) * int(card["max_height"]), card["architecture"],
                                   int(card.get("width", 32)))
        net.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    except NanofindInputError:
        raise
    except Exception as exc:  # missing file, wrong shapes, corrupt header
        raise NanofindInputError(f"unusable network weights ({type(exc).__name__}: {exc})",
                                 str(directory / WEIGHTS_FILE)) from None
    net.eval()
    return HeightModel(net, card)


def class_map(model: HeightModel, image: np.ndarray, *, symmetric: bool = False) -> np.ndarray:
    """Per-pixel class probabilities ``(classes, rows, cols)`` (float32) of a network input.

    ``image`` is at the model's pixel size and normalised
    (:func:`nanofind.columns.training.network_input`); it runs in tiles of at most
    :data:`TILE_PX` that overlap by :data:`TILE_OVERLAP_PX`. ``symmetric``: each tile's answer is
    the mean over its 8 quarter turns and mirrors (8 times the work;
    :func:`nanofind.columns.training.class_probabilities`). The logits are divided by the card's
    ``temperature`` (1 when it has none; :func:`nanofind.columns.training.fit_temperature`).
    """
    from nanofind.columns.training import class_probabilities

    x = np.asarray(image, dtype=np.float32)
    h, w = x.shape
    out = np.empty((1 + len(model.elements) * model.max_height, h, w), dtype=np.float32)
    step = TILE_PX - 2 * TILE_OVERLAP_PX
    for top in range(0, h, step):
        for left in range(0, w, step):
            r0, c0 = max(0, top - TILE_OVERLAP_PX), max(0, left - TILE_OVERLAP_PX)
            r1, c1 = min(h, top + step + TILE_OVERLAP_PX), min(w, left + step + TILE_OVERLAP_PX)
            p = class_probabilities(model.net, x[r0:r1, c0:c1], symmetric=symmetric,
                                    temperature=float(model.card.get("temperature", 1.0)))
            rows, cols = slice(top, min(h, top + step)), slice(left, min(w, left + step))
            out[:, rows, cols] = p[:, rows.start - r0:rows.stop - r0, cols.start - c0:cols.stop - c0]
    return out


def predict_columns(model: HeightModel, image: np.ndarray, pixel_size_A: float, *, threshold: float = 0.5,
                    symmetric: bool = False) -> ColumnPrediction:
    """Columns, heights, elements and confidences of one micrograph (``pixel_size_A`` Å per pixel).

    ``threshold``: the least peak column probability of a column; ``symmetric``: see :func:`class_map`.

    Raises
    ------
    NanofindInputError
        A pixel size that is not positive or that would make the resampled image too large.
    """
    from nanofind.columns.heights import columns_from_probability, read_heights
    from nanofind.columns.training import network_input

    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2 or min(x.shape) < 8:
        raise NanofindInputError(f"image must be 2D and at least 8 px a side, got shape {x.shape}")
    if not (np.isfinite(pixel_size_A) and pixel_size_A > 0):
        raise NanofindInputError(f"pixel size must be > 0 Å, got {pixel_size_A}")
    zoom = float(pixel_size_A) / model.pixel_A
    size = [max(1, int(round(n * zoom))) for n in x.shape]
    if size[0] * size[1] > MAX_MODEL_PIXELS:
        raise NanofindInputError(f"at the model's {model.pixel_A} Å/px the image would be {size[1]} x {size[0]} px "
                                 f"(at most {MAX_MODEL_PIXELS} px); crop it")
    if min(size) < 16:
        raise NanofindInputError(f"at the model's {model.pixel_A} Å/px the image is only {size[1]} x {size[0]} px")
    probabilities = class_map(model, network_input(x, pixel_size_A, model.pixel_A), symmetric=symmetric)
    radius_px = model.radius_A / model.pixel_A
    fx, fy, peak = columns_from_probability(1.0 - probabilities[0], radius_px=radius_px, threshold=threshold,
                                            min_separation_px=float(model.card["min_separation_A"]) / model.pixel_A)
    read = read_heights(probabilities, fx, fy, radius_px=radius_px, sublattices=len(model.elements))
    sublattices, top = len(model.elements), model.max_height
    per_height = probabilities[1:].reshape(sublattices, top, *probabilities.shape[1:]).sum(axis=0)
    best = per_height.argmax(axis=0)
    heights = np.where(per_height.max(axis=0) > probabilities[0], best + 1, 0).astype(np.uint8)
    rows = np.minimum((np.arange(x.shape[0]) + 0.5) * zoom, heights.shape[0] - 1).astype(np.intp)
    cols = np.minimum((np.arange(x.shape[1]) + 0.5) * zoom, heights.shape[1] - 1).astype(np.intp)
    names = np.asarray(model.elements, dtype=object)
    return ColumnPrediction(x_px=fx / zoom, y_px=fy / zoom, height=read.height.astype(np.int64),
                            element=names[read.sublattice] if len(fx) else np.zeros(0, object),
                            confidence=read.confidence, probability=peak, height_map=heights[np.ix_(rows, cols)])
