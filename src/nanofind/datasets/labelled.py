"""Training sets from labelled real micrographs: ``nanofind dataset from-labeled IMAGES MASKS -o OUT.h5``.

Each micrograph is cut into ``tile`` × ``tile`` pieces (the seeds used 512², from 1024² and 4096²
images): tiles start every ``tile`` pixels, and a last tile aligned with the far edge covers the
remainder, so no pixel is lost. Tiles without any particle pixel are dropped (the seeds found the
background class otherwise swamps training). The result is a dataset file in the simulation's
format (docs/dataset-format.md): image (float32, as read, not normalised), mask, an empty grain
map (−1 off particles, 0 on them), zero column heights, no columns, the mask's connected components
as instances with their footprint records, and a parameter record per tile with its source files,
tile origin and pixel size (null when unknown).

Folders of labelled micrographs follow one rule, here, for every command that reads them
(:func:`labelled_pairs`): an image ``<stem>.<ext>`` pairs with the first mask found among
``mask_<id>``, ``<stem>_mask``, ``<stem>_label`` and (in a separate masks folder) ``<stem>``, each
``.png``, ``.tif`` or ``.tiff``, where ``<id>`` is the stem without a leading ``img_``. Masks are
non-zero on particles (:func:`read_mask`). An optional ``meta_<id>.json`` beside the image (or the
mask) gives ``pixel_size`` in Å.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nanofind.datasets.store import run_header, write_samples_file
from nanofind.errors import NanofindInputError
from nanofind.io.micrograph import SUFFIXES, read_micrograph

#: File endings a mask may have.
MASK_SUFFIXES = (".png", ".tif", ".tiff")
#: Name prefixes and suffixes of label files, which are never taken for micrographs.
_LABEL_PREFIXES = ("mask_", "instance_")
_LABEL_SUFFIXES = ("_mask", "_label", "_instance")


class LabelledPair(NamedTuple):
    """One labelled micrograph's files."""

    image: Path
    mask: Path
    meta: Path | None  #: ``meta_<id>.json`` when present


def _is_label_file(path: Path) -> bool:
    stem = path.stem
    return stem.startswith(_LABEL_PREFIXES) or stem.endswith(_LABEL_SUFFIXES)


def _mask_names(image: Path, separate_folder: bool) -> list[str]:
    stem = image.stem
    names = [f"mask_{stem.removeprefix('img_')}", f"{stem}_mask", f"{stem}_label"]
    return names + [stem] if separate_folder else names


def labelled_pairs(images_dir: str | Path, masks_dir: str | Path | None = None) -> list[LabelledPair]:
    """Every micrograph of ``images_dir`` with its mask (from ``masks_dir``, default the same folder), sorted.

    See the module docstring for the names accepted. Raises :class:`NanofindInputError` naming the
    image and the names looked for when a micrograph has no mask, or the folder when it holds none.
    """
    images = Path(images_dir)
    masks = images if masks_dir is None else Path(masks_dir)
    for folder, what in ((images, "IMAGES"), (masks, "MASKS")):
        if not folder.is_dir():
            raise NanofindInputError("not a folder", f"{what} {folder}")
    separate = masks.resolve() != images.resolve()
    pairs = []
    for image in sorted(p for p in images.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
                        and not _is_label_file(p)):
        names = _mask_names(image, separate)
        found = [masks / (n + ext) for n in names for ext in MASK_SUFFIXES]
        found = [c for c in found if c.is_file() and c.resolve() != image.resolve()]  # never the image itself
        if not found:
            raise NanofindInputError(f"no mask for {image.name} in {masks} (looked for {', '.join(names)} "
                                     f"with {'/'.join(MASK_SUFFIXES)})", str(image))
        meta_name = f"meta_{image.stem.removeprefix('img_')}.json"
        meta = next((d / meta_name for d in (images, masks) if (d / meta_name).is_file()), None)
        pairs.append(LabelledPair(image, found[0], meta))
    if not pairs:
        raise NanofindInputError("no labelled micrographs found (images with mask_<id>, <stem>_mask or "
                                 "<stem>_label masks)", str(images))
    return pairs


def read_mask(path: str | Path, shape: tuple[int, ...]) -> np.ndarray:
    """A particle mask file as uint8 (1 where the file is non-zero), checked against its image's ``shape``."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mask = np.asarray(im.convert("L")) > 0
    except OSError as exc:
        raise NanofindInputError(f"cannot read mask ({exc})", str(path)) from None
    if mask.shape != tuple(shape):
        raise NanofindInputError(f"mask is {mask.shape} pixels, its image {tuple(shape)}", str(path))
    return mask.astype(np.uint8)


def meta_pixel_size_A(meta: str | Path | None) -> float | None:
    """``pixel_size`` (Å) recorded in a ``meta_<id>.json`` file, or None when absent."""
    if meta is None:
        return None
    try:
        recorded = json.loads(Path(meta).read_text()).get("pixel_size")
        return float(recorded) if recorded else None
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise NanofindInputError(f"unreadable metadata ({exc})", str(meta)) from None


def tile_starts(n: int, tile: int) -> list[int]:
    """Tile origins along an axis of ``n`` pixels: every ``tile``, plus one flush with the far edge."""
    starts = list(range(0, n - tile + 1, tile))
    if starts and starts[-1] + tile < n:
        starts.append(n - tile)
    return starts


def from_labelled(images: str | Path, masks: str | Path, out: str | Path, tile: int = 512,
                  pixel_size_A: float | None = None) -> dict:
    """Tile labelled micrographs into a dataset file; returns counts of images, tiles kept and dropped.

    ``pixel_size_A`` (Å), when given, overrides the pixel size of ``meta_<id>.json`` files and of
    the images' own metadata.
    """
    from nanofind.datasets.sample import Sample

    images, masks, out = Path(images), Path(masks), Path(out)
    files = labelled_pairs(images, masks)
    samples, dropped = [], 0
    for path, mask_path, meta_path in files:
        micrograph = read_micrograph(path, pixel_size_A)
        if micrograph.array.ndim != 2:
            raise NanofindInputError("labelled micrographs must be 2D", str(path))
        pixel = pixel_size_A or meta_pixel_size_A(meta_path) or micrograph.pixel_size_A
        mask = read_mask(mask_path, micrograph.array.shape).astype(bool)
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
                          "pixel_size_A": pixel, "seed": None}
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
