"""Training sets from labelled real micrographs: ``nanofind dataset from-labeled IMAGES MASKS -o OUT.h5``.

Each micrograph is cut into ``tile`` × ``tile`` pieces (the seeds used 512², from 1024² and 4096²
images): tiles start every ``tile`` pixels, and a last tile aligned with the far edge covers the
remainder, so no pixel is lost. Tiles without any particle pixel are dropped (the seeds found the
background class otherwise swamps training). The result is a dataset file in the simulation's
format (docs/dataset-format.md): image (float32, as read, not normalised), mask, an empty grain
map (−1 off particles, 0 on them), zero column heights, no columns, and a parameter record per tile
with its source files, tile origin and pixel size (null when unknown).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nanofind.datasets.store import run_header, write_samples_file
from nanofind.errors import NanofindInputError
from nanofind.io.micrograph import SUFFIXES, read_micrograph


def _mask_for(image: Path, masks: Path) -> Path:
    stem = image.stem
    names = [f"mask_{stem.removeprefix('img_')}", f"{stem}_mask", f"{stem}_label", stem]
    for name in names:
        for ext in (".png", ".tif", ".tiff"):
            candidate = masks / (name + ext)
            if candidate.is_file() and candidate.resolve() != image.resolve():  # never the image itself
                return candidate
    raise NanofindInputError(f"no mask for {image.name} in {masks} (looked for {', '.join(names)} .png/.tif)",
                             str(image))


def tile_starts(n: int, tile: int) -> list[int]:
    """Tile origins along an axis of ``n`` pixels: every ``tile``, plus one flush with the far edge."""
    starts = list(range(0, n - tile + 1, tile))
    if starts and starts[-1] + tile < n:
        starts.append(n - tile)
    return starts


def from_labelled(images: str | Path, masks: str | Path, out: str | Path, tile: int = 512,
                  pixel_size_A: float | None = None) -> dict:
    """Tile labelled micrographs into a dataset file; returns counts of images, tiles kept and dropped."""
    from PIL import Image

    from nanofind.simulate.pipeline import Sample

    images, masks, out = Path(images), Path(masks), Path(out)
    for folder, what in ((images, "IMAGES"), (masks, "MASKS")):
        if not folder.is_dir():
            raise NanofindInputError("not a folder", f"{what} {folder}")
    files = sorted(p for p in images.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
                   and not p.stem.startswith("mask_") and not p.stem.endswith("_mask"))
    if not files:
        raise NanofindInputError("no micrographs found", str(images))
    samples, dropped = [], 0
    for path in files:
        micrograph = read_micrograph(path, pixel_size_A)
        if micrograph.array.ndim != 2:
            raise NanofindInputError("labelled micrographs must be 2D", str(path))
        mask_path = _mask_for(path, masks)
        try:
            with Image.open(mask_path) as im:
                mask = np.asarray(im.convert("L")) > 0
        except OSError as exc:
            raise NanofindInputError(f"cannot read mask ({exc})", str(mask_path)) from None
        if mask.shape != micrograph.array.shape:
            raise NanofindInputError(f"mask is {mask.shape}, its image {micrograph.array.shape}", str(mask_path))
        h, w = mask.shape
        if h < tile or w < tile:
            raise NanofindInputError(f"image is {h}x{w} pixels, smaller than the {tile}-pixel tile; use --tile",
                                     str(path))
        for r in tile_starts(h, tile):
            for c in tile_starts(w, tile):
                m = mask[r:r + tile, c:c + tile]
                if not m.any():
                    dropped += 1
                    continue
                index = len(samples)
                params = {"index": index, "kind": "labelled", "source_image": str(path),
                          "source_mask": str(mask_path), "tile_origin_px": [r, c], "tile_px": tile,
                          "pixel_size_A": micrograph.pixel_size_A, "seed": None}
                samples.append(Sample(index, micrograph.array[r:r + tile, c:c + tile].copy(), m.astype(np.uint8),
                                      np.where(m, 0, -1).astype(np.int16), np.zeros(m.shape, np.uint16),
                                      np.zeros((0, 4), np.float32), params))
    if not samples:
        raise NanofindInputError("every tile is empty (no particle pixels in any mask)", str(masks))
    header = run_header({"from_labeled": {"images": str(images), "masks": str(masks), "tile_px": tile}},
                        "nanofind dataset from-labeled", 0, 1)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_samples_file(out, samples, header)
    except OSError as exc:
        raise NanofindInputError(f"cannot write ({exc.strerror or exc})", str(out)) from None
    return {"images": len(files), "tiles": len(samples), "dropped_empty": dropped, "path": str(out)}
