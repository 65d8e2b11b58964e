"""The scale guard: bounded resampling and a memory estimate made before anything is allocated.

A model works at a range of pixel sizes (its card's ``working_pixel_size_range_A``), and a
micrograph of known pixel size is resampled into it (:func:`model_zoom`).
Followed blindly, a low-magnification image (52.6 Å per pixel, a TIA search image) would be enlarged
about 150×, and an implausible header (1e-4 Å) shrunk to nothing. So:

- the factor is kept within :data:`ZOOM_LIMITS` (¼× to 4×). Beyond 4× enlargement the network sees
  interpolation blur, not atoms; below ¼× the pixel is under 0.07 Å, which no HRTEM camera records,
  so the header is more likely wrong than the image. Outside these bounds the image is analysed at
  the bounded factor, with a warning that the results are unreliable;
- the peak memory of the whole job is estimated from the image and working sizes before anything is
  allocated (:func:`estimate_bytes`, fitted to measurements, see docs/benchmarks.md). If enlarging
  would pass the limit (default :data:`MEMORY_LIMIT_GB`), the factor is lowered to what fits, with a
  warning; if even the image's own size would pass it, the image is refused with one clear line.

Time follows memory: inference time is proportional to the working pixels, so bounding them bounds it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from nanofind.errors import NanofindInputError
from nanofind.learn.card import ModelCard

#: Smallest and largest resampling factor applied to a micrograph (1 = its own pixel grid).
ZOOM_LIMITS = (0.25, 4.0)
#: Default limit of a segment or analyze process's peak memory, GB (10⁹ bytes).
MEMORY_LIMIT_GB = 4.0
#: Memory of the process before the first image: Python, PyTorch, the network and a runner, bytes
#: (measured 560-620 MB, plus reading overhead).
BASE_BYTES = 800e6
#: Bytes per pixel of the micrograph's own grid: the float32 image, its normalised copies, the probability,
#: and for ``analyze`` the label map, distance transform and overlay (measured, with a margin).
BYTES_PER_IMAGE_PX = {"segment": 36.0, "analyze": 50.0}
#: Bytes per pixel of the resampled working grid: the resampled image, the sliding-window output,
#: its weight map and the probability before resampling back (measured, with a margin).
BYTES_PER_WORK_PX = 16.0
#: Smallest side of the working image, pixels (the networks pad up to 32; smaller holds nothing to segment).
MIN_WORK_SIDE_PX = 64


@dataclass
class ScalePlan:
    """How one micrograph is resampled for its model, and what that will cost."""

    zoom: float  #: factor applied (> 1 enlarges)
    wanted_zoom: float  #: factor that would bring the pixel size into the model's working range
    pixel_size_A: float | None
    image_shape: tuple[int, int]
    work_shape: tuple[int, int]
    estimated_bytes: float
    warnings: list[str] = field(default_factory=list)

    @property
    def working_pixel_size_A(self) -> float | None:
        """Pixel size (Å) the model sees."""
        return None if self.pixel_size_A is None else self.pixel_size_A / self.zoom

    def to_dict(self) -> dict:
        """JSON-able record."""
        d = asdict(self)
        d["estimated_memory_GB"] = round(d.pop("estimated_bytes") / 1e9, 3)
        d["working_pixel_size_A"] = self.working_pixel_size_A
        return d


def estimate_bytes(image_shape: tuple[int, int], zoom: float, job: str = "segment") -> float:
    """Estimated peak memory (bytes) of segmenting (``job="segment"``) or analysing one image at ``zoom``."""
    image_px = image_shape[0] * image_shape[1]
    work_px = image_px * zoom * zoom
    return BASE_BYTES + BYTES_PER_IMAGE_PX[job] * image_px + BYTES_PER_WORK_PX * work_px


def max_image_pixels(memory_limit_gb: float = MEMORY_LIMIT_GB, job: str = "segment") -> int:
    """Most pixels an image may have to be processed on its own grid within ``memory_limit_gb``."""
    room = memory_limit_gb * 1e9 - BASE_BYTES
    return max(0, int(room / (BYTES_PER_IMAGE_PX[job] + BYTES_PER_WORK_PX)))


def model_zoom(pixel_size_A: float | None, card: ModelCard) -> float:
    """Magnification that brings a micrograph (pixel size in Å) into the pixel sizes its model works at.

    That is the card's ``working_pixel_size_range_A`` when it has one (a model may outline
    particles best in part of its training range), else its training ``pixel_size_range_A``.
    1 when the pixel size is unknown.
    """
    working = _working_range(card)
    if not pixel_size_A or working is None:
        return 1.0
    target = min(max(pixel_size_A, working[0]), working[1])
    return pixel_size_A / target


def _working_range(card: ModelCard) -> tuple[float, float] | None:
    lo, hi = card.working_pixel_size_range_A or card.pixel_size_range_A or (card.pixel_size_A,) * 2
    return None if lo is None or hi is None else (lo, hi)


def plan_scale(image_shape: tuple[int, int], pixel_size_A: float | None, card: ModelCard,
               memory_limit_gb: float = MEMORY_LIMIT_GB, job: str = "segment", name: str = "",
               wanted_zoom: float | None = None) -> ScalePlan:
    """The resampling factor for one image (``image_shape`` rows × columns, pixel size in Å), checked.

    The factor brings the pixel size into the model's working range (:func:`model_zoom`), unless the
    image's content asks for ``wanted_zoom`` itself (its particles' measured size or its lattice
    fringes, :mod:`nanofind.segment.model_choice`, which bounds it). Memory bounds apply either way.

    Raises :class:`NanofindInputError` naming ``name`` when the image cannot be processed within
    ``memory_limit_gb`` even on its own grid.
    """
    rows, cols = int(image_shape[0]), int(image_shape[1])
    where = name or "image"
    limit = memory_limit_gb * 1e9
    warnings = []
    if wanted_zoom is not None:
        wanted = zoom = float(wanted_zoom)
    else:
        wanted = model_zoom(pixel_size_A, card)
        lo, hi = ZOOM_LIMITS
        zoom = min(max(wanted, lo), hi)
    if zoom != wanted:
        working = _working_range(card)
        span = f"{working[0]:g}–{working[1]:g} Å" if working else "its training"
        warnings.append(f"pixel size {pixel_size_A:g} Å is far outside the model's {span} range (it would need "
                        f"{wanted:.3g}× resampling; analysed at {zoom:g}×): results are unreliable")
    floor = min(1.0, MIN_WORK_SIDE_PX / min(rows, cols))
    if zoom < floor:
        zoom = floor
    need_own = estimate_bytes((rows, cols), min(zoom, 1.0), job)
    if need_own > limit:
        raise NanofindInputError(f"{rows}x{cols} pixels need about {need_own / 1e9:.1f} GB to {job}, over the "
                                 f"{memory_limit_gb:g} GB limit; crop or bin the image, or raise --max-memory",
                                 where)
    if estimate_bytes((rows, cols), zoom, job) > limit:
        room = (limit - estimate_bytes((rows, cols), 0.0, job)) / (BYTES_PER_WORK_PX * rows * cols)
        fitted = max(1.0, math.floor(math.sqrt(max(room, 0.0)) * 100) / 100)
        working = (f" (working pixel {pixel_size_A / fitted:.3g} Å instead of {pixel_size_A / zoom:.3g} Å)"
                   if pixel_size_A else "")
        warnings.append(f"resampling {zoom:.3g}× would need about {estimate_bytes((rows, cols), zoom, job) / 1e9:.1f}"
                        f" GB, over the {memory_limit_gb:g} GB limit; analysed at {fitted:g}×{working}")
        zoom = fitted
    if abs(zoom - 1) <= 1e-3:
        zoom = 1.0
    work = (max(1, round(rows * zoom)), max(1, round(cols * zoom)))
    return ScalePlan(zoom=zoom, wanted_zoom=wanted, pixel_size_A=pixel_size_A, image_shape=(rows, cols),
                     work_shape=work, estimated_bytes=estimate_bytes((rows, cols), zoom, job), warnings=warnings)
