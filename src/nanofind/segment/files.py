"""``nanofind segment``: a particle mask and probability map for every micrograph.

For each 2D frame, ``<stem>_mask.png`` (0/255: probability at or above the threshold) and
``<stem>_prob.tif`` (float32 particle probability on the micrograph's own grid) are written into the
output folder, by whichever process segmented the frame (see :mod:`nanofind.segment.batch`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from nanofind.errors import NanofindInputError
from nanofind.learn.card import ModelCard
from nanofind.learn.scale_guard import MEMORY_LIMIT_GB
from nanofind.segment.batch import BatchRun, FileResult, FrameInput, ModelChoice, segment_batch
from nanofind.segment.inference import BATCH, WINDOW_PX
from nanofind.segment.outline import outline_mask


def segment_files(inputs: Sequence[str | Path], out_dir: str | Path, *, model: ModelChoice | None = None,
                  threshold: float | None = None, pixel_size_A: float | None = None, window_px: int = WINDOW_PX,
                  batch: int = BATCH, tta: bool = False, max_memory_gb: float = MEMORY_LIMIT_GB, workers: int = 1,
                  scheduler: Any = None, on_file: Callable[[FileResult], None] | None = None,
                  on_start: Callable[[str], None] | None = None) -> BatchRun:
    """Write a mask and a probability map of every micrograph of ``inputs`` into ``out_dir``.

    ``threshold`` defaults to the model card's; ``pixel_size_A`` (Å) overrides the files'. Each frame's
    result is a dict: ``frame`` (index in its stack, or None), ``width_px``, ``height_px``,
    ``particle_fraction`` (of the field above the threshold), ``seconds``, ``mask_png`` and ``warnings``
    (the scale guard's). The other parameters are those of
    :func:`nanofind.segment.batch.segment_batch`; no progress bar is drawn (``on_file`` reports each file).
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanofindInputError(f"cannot create ({exc.strerror or exc})", str(out)) from None
    return segment_batch(inputs, partial(_write_frame, out=out, threshold=threshold),
                         model=model or ModelChoice(warm_up_px=window_px), pixel_size_A=pixel_size_A,
                         window_px=window_px, batch=batch, tta=tta, max_memory_gb=max_memory_gb, job="segment",
                         workers=workers, scheduler=scheduler, progress=False, description="segmenting",
                         on_file=on_file, on_start=on_start)


def _write_frame(item: FrameInput, card: ModelCard, *, out: Path, threshold: float | None) -> dict:
    """Batch frame function: write one frame's mask and probability map."""
    import tifffile
    from PIL import Image

    prob = item.probability
    mask = outline_mask(card, prob, item.frame.array, threshold)
    stem = item.frame.name
    Image.fromarray((mask * 255).astype(np.uint8)).save(out / f"{stem}_mask.png")
    tifffile.imwrite(out / f"{stem}_prob.tif", prob.astype(np.float32))
    height, width = item.frame.array.shape
    return {"frame": item.index, "width_px": width, "height_px": height, "particle_fraction": float(mask.mean()),
            "seconds": time.perf_counter() - item.started_s, "mask_png": str(out / f"{stem}_mask.png"),
            "warnings": list(item.plan.warnings), "model": item.decision}
