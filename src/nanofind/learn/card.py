"""The model card: what a learned model is for, how to feed it, and how it was made.

A model directory holds ``model.safetensors`` and ``card.json`` (:mod:`nanofind.learn.model_file`).
The card is a typed record (:class:`ModelCard`): the task and its output classes, the architecture,
the input normalisation as explicit settings (:class:`Normalisation`), the pixel sizes (Å) the model
was trained and works at, the decision threshold or calibration, the training record and metrics.

Cards of the first layout (format ``nanofind-model/1``, or no format) are migrated on reading: they
were all particle segmentation, and described the normalisation in prose, where a non-empty
``background`` entry meant the illumination background was flattened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nanofind.errors import NanofindInputError

#: File name of the card inside a model directory.
CARD = "card.json"
FORMAT = "nanofind-model/2"
#: The first card layout, still readable (migrated by :meth:`ModelCard.from_record`).
FORMAT_V1 = "nanofind-model/1"
TASKS = ("segmentation", "classification", "column_heights")
#: Output classes of a particle-segmentation model; the foreground is :data:`FOREGROUND`.
SEGMENTATION_CLASSES = ("background", "particle")
FOREGROUND = "particle"
#: The only centring and scaling the normaliser knows; named so that a card says which it used.
CENTRE_MEDIAN = "median"
SCALE_HALF_16_84 = "half_16_84_percentile_range"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Normalisation(BaseModel):
    """How an image is prepared for a network, in training and inference alike.

    ``median_filter_px``: side (px, odd) of a median filter that removes X-ray spikes; None or 1
    for none. ``flatten_background``: subtract the robustly fitted quadratic illumination surface
    (:func:`nanofind.learn.preprocess.background_surface`). Then the image is centred on its
    median and divided by half its 16th–84th percentile range.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    median_filter_px: int | None = 3
    flatten_background: bool = True
    centre: Literal["median"] = CENTRE_MEDIAN
    scale: Literal["half_16_84_percentile_range"] = SCALE_HALF_16_84

    @field_validator("median_filter_px", mode="before")
    @classmethod
    def _odd_side(cls, value):
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)
                                      and value >= 1 and value % 2 == 1):
            raise ValueError(f"must be an odd number of pixels (1 or null for none), got {_short(value)}")
        return value

    @field_validator("flatten_background", mode="before")
    @classmethod
    def _boolean(cls, value):
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {_short(value)}")
        return value

    @property
    def median_px(self) -> int:
        """The median filter's side in pixels, 1 when there is none."""
        return self.median_filter_px or 1

    def describe(self) -> str:
        """One sentence for reports, e.g. "3 × 3 px median filter, background flattened, ..."."""
        k = self.median_px
        steps = [f"{k} × {k} px median filter" if k > 1 else "no median filter",
                 "illumination background flattened (robust quadratic surface)" if self.flatten_background
                 else "background not flattened",
                 "centred on the median and scaled by half the 16th–84th percentile range"]
        sentence = ", ".join(steps)
        return sentence[0].upper() + sentence[1:] + "."


class TrainingRecord(BaseModel):
    """How a model was trained. Further keys (stages, data_commands, reproduce, ...) are kept as given."""

    model_config = ConfigDict(extra="allow", frozen=True)

    config: dict | None = None  #: the training configuration (:class:`nanofind.learn.train.TrainConfig`)
    sources: list[str] = Field(default_factory=list)  #: the data paths
    split: dict = Field(default_factory=dict)  #: how the validation images were chosen
    train_data: dict | None = None  #: summary of the training images (:func:`nanofind.learn.data.describe`)
    validation_data: dict | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    stopped: str | None = None  #: max_epochs, early_stopping or time_limit
    seconds: float | None = None
    engine: dict | None = None  #: the run record (CPU, precision, backend): ``Engine.record()``
    init: dict | None = None  #: the configuration of the model it was fine-tuned from


class ModelCard(BaseModel):
    """The card of a model directory (see the module docstring).

    ``classes`` name the network's output channels: for segmentation and classification the
    classes of the softmax (segmentation: ``["background", "particle"]`` unless given), for
    ``column_heights`` the regressed quantities. ``threshold`` (0..1) is the decision threshold of a
    segmentation model's foreground probability; a classifier may carry ``calibration`` instead
    (e.g. ``{"temperature": 1.3}``).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    format: Literal["nanofind-model/2"] = FORMAT
    nanofind_version: str | None = None
    task: Literal["segmentation", "classification", "column_heights"]
    architecture: str
    options: dict = Field(default_factory=dict)
    classes: list[str] = Field(default_factory=list)
    input_channels: int = Field(default=1, ge=1)
    normalisation: Normalisation
    pixel_size_A: float | None  #: training pixel size, Å (median), None when unknown
    pixel_size_range_A: list[float] | None = None  #: [smallest, largest] training pixel size, Å
    working_pixel_size_range_A: list[float] | None = None  #: pixel sizes it segments best at, Å
    working_pixel_size_note: str | None = None  #: how the working range was measured
    threshold: float | None = None
    #: lower threshold of hysteresis: pixels of at least this probability join a particle when connected
    #: to pixels at ``threshold`` or above (None: plain thresholding; see :func:`particle_mask`)
    hysteresis_low: float | None = None
    calibration: dict | None = None
    #: the micrographs it is for: ``"hrtem"`` (lattice fringes, sub-Å pixels) or ``"bright_field"`` (low
    #: magnification, 1-50 Å pixels); ``--model auto`` picks among the shipped models by it (None: not stated)
    imaging: Literal["hrtem", "bright_field"] | None = None
    #: [smallest, typical, largest] particle diameter (px) the model was trained on; images of unknown pixel size
    #: are resampled so their particles come near the typical one (see :mod:`nanofind.segment.model_choice`)
    particle_diameter_px: list[float] | None = None
    #: images whose particles are typically smaller than this (px, measured on the model's mask) get their
    #: outlines moved to the image's local half-contrast edge (:mod:`nanofind.segment.outline`); None: never
    refine_outlines_below_px: float | None = Field(default=None, gt=0)
    training: TrainingRecord = Field(default_factory=TrainingRecord)
    metrics: dict = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_classes(cls, data):
        if isinstance(data, dict) and data.get("task") == "segmentation" and not data.get("classes"):
            data = {**data, "classes": list(SEGMENTATION_CLASSES)}
        return data

    @field_validator("threshold", "hysteresis_low", mode="before")
    @classmethod
    def _threshold(cls, value):
        if value is not None and not (_is_number(value) and 0 <= value <= 1):
            raise ValueError(f"must be a number between 0 and 1, got {_short(value)}")
        return value

    @field_validator("pixel_size_A", mode="before")
    @classmethod
    def _pixel_size(cls, value):
        if value is not None and not (_is_number(value) and value > 0):
            raise ValueError(f"must be a positive number of Å or null, got {_short(value)}")
        return value

    @field_validator("pixel_size_range_A", "working_pixel_size_range_A", mode="before")
    @classmethod
    def _range(cls, value):
        if value is None:
            return value
        if not (isinstance(value, list | tuple) and len(value) == 2 and all(_is_number(v) and v > 0 for v in value)
                and value[0] <= value[1]):
            raise ValueError(f"must be [smallest, largest] in Å or null, got {_short(value)}")
        return list(value)

    @model_validator(mode="after")
    def _task_needs(self):
        if not self.classes:
            raise ValueError(f"classes must name the {self.task} model's output channels")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must differ from each other, got {self.classes}")
        if self.task == "segmentation":
            if FOREGROUND not in self.classes or len(self.classes) < 2:
                raise ValueError(f"classes of a segmentation model must include {FOREGROUND!r} and the background, "
                                 f"got {self.classes}")
            if self.threshold is None:
                raise ValueError("threshold is required for a segmentation model (a number between 0 and 1)")
            if self.hysteresis_low is not None and self.hysteresis_low > self.threshold:
                raise ValueError(f"hysteresis_low must not exceed the threshold {self.threshold}, "
                                 f"got {self.hysteresis_low}")
        return self

    # ---- reading and writing ---------------------------------------------------------------------------------------

    @classmethod
    def from_record(cls, record: dict, source: str = CARD) -> ModelCard:
        """A card from its JSON record (either layout), checked; errors name ``source`` and the field in one line."""
        if not isinstance(record, dict):
            raise NanofindInputError(f"model card must be a JSON object, got {type(record).__name__}", source)
        try:
            return cls.model_validate(migrate(record))
        except ValueError as exc:  # pydantic's ValidationError and migrate's complaints alike
            raise NanofindInputError(_one_line(exc), source) from None

    @classmethod
    def read(cls, directory: str | Path) -> ModelCard:
        """The card of a model directory; :class:`NanofindInputError` naming the file when missing or invalid."""
        directory = Path(directory)
        path = directory / CARD
        if not path.is_file():
            raise NanofindInputError(f"not a nanofind model directory (no {CARD})", str(directory))
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise NanofindInputError(f"unreadable model card ({exc})", str(path)) from None
        return cls.from_record(record, str(path))

    def record(self) -> dict:
        """JSON-able dict of the card (the content of ``card.json``)."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """The text of ``card.json``."""
        return json.dumps(self.record(), indent=1, ensure_ascii=False)

    # ---- what inference needs ------------------------------------------------------------------------------------

    @property
    def output_channels(self) -> int:
        """Channels the network outputs: one per class (segmentation, classification) or regressed quantity."""
        return len(self.classes)

    def particle_mask(self, probability, threshold: float | None = None):
        """Boolean particle mask of a foreground ``probability`` map (see :func:`particle_mask`).

        ``threshold`` overrides the card's (the hysteresis low threshold is then kept below it).
        """
        return particle_mask(probability, self.threshold if threshold is None else threshold, self.hysteresis_low)

    @property
    def foreground_index(self) -> int:
        """Output channel of the particle class (segmentation); ValueError for other tasks."""
        if FOREGROUND not in self.classes:
            raise ValueError(f"a {self.task} model has no {FOREGROUND!r} class")
        return self.classes.index(FOREGROUND)


def particle_mask(probability, threshold: float, hysteresis_low: float | None = None):
    """Pixels of particles: ``probability >= threshold``, grown by hysteresis when ``hysteresis_low`` is given.

    With hysteresis, a connected region of pixels at ``hysteresis_low`` or above is kept whole when
    any of its pixels reaches ``threshold`` (scikit-image's ``apply_hysteresis_threshold``): a faint,
    compact particle whose core the model is sure of keeps its rim, and uncertain specks with no
    sure core are dropped. The low threshold is capped at ``threshold``.
    """
    import numpy as np

    probability = np.asarray(probability)
    if hysteresis_low is None or hysteresis_low >= threshold:
        return probability >= threshold
    from skimage.filters import apply_hysteresis_threshold

    # skimage keeps pixels strictly above each threshold; nextafter keeps ">=" as in plain thresholding
    below = np.nextafter(np.float32(threshold), np.float32(-1))
    low = np.nextafter(np.float32(hysteresis_low), np.float32(-1))
    return apply_hysteresis_threshold(probability, low, below)


def migrate(record: dict) -> dict:
    """A card record in the current layout: first-layout records are translated, current ones returned as they are.

    The first layout was particle segmentation only, with the normalisation in prose: a non-empty
    ``background`` entry meant flattening (cards from before flattening existed have none), and the
    median filter was always applied (3 px when no size is recorded).
    """
    version = record.get("format", FORMAT_V1)
    if version == FORMAT:
        return record
    if version != FORMAT_V1:
        raise ValueError(f"format must be {FORMAT} or {FORMAT_V1}, got {_short(version)}")
    new = {k: v for k, v in record.items() if k != "format"}
    new["format"] = FORMAT
    new.setdefault("task", "segmentation")
    old = record.get("normalisation")
    if isinstance(old, dict):
        new["normalisation"] = {"median_filter_px": old.get("median_filter_px") or 3,
                                "flatten_background": bool(old.get("background"))}
    # keep the field order of the current layout, so that a migrated card reads like a new one
    order = list(ModelCard.model_fields)
    return {k: new[k] for k in sorted(new, key=lambda k: order.index(k) if k in order else len(order))}


def _one_line(exc: ValueError) -> str:
    """One line naming the field, from a pydantic ValidationError (or a plain ValueError)."""
    if not isinstance(exc, ValidationError):
        return f"model card: {exc}"
    errors = exc.errors()
    missing = [".".join(map(str, e["loc"])) for e in errors if e["type"] == "missing"]
    if missing:
        return f"model card lacks {', '.join(missing)}"
    error = errors[0]
    field = ".".join(map(str, error["loc"]))
    if error["type"] == "value_error":
        text = str(error["ctx"]["error"])
        return f"model card: {field} {text}" if field else f"model card: {text}"
    return f"model card: {field}: {error['msg']}, got {_short(error.get('input'))}"
