"""Labelled real micrographs at other magnifications: resampled copies of the training folds only.

The low-magnification model must see real bright-field contrast at particle sizes other than the
~55 px of the 20 labelled micrographs. This writes, for every image *not* in the held-out fold,
copies resampled by each factor (area-averaged when shrinking; masks by majority), as
``img_<id>_x<f>.png`` + ``mask_<id>_x<f>.png``. Copies smaller than 256 px are tiled 2 × 2 or 3 × 3
with other images of the same factor (mirrored at the seams), so that training crops fit.

    .venv/bin/python scripts/real-multiscale.py REAL_DIR OUT_DIR --fold 0/5
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image

from nanofind.learn.data import load_folder, split
from nanofind.learn.preprocess import resample

FACTORS = (0.2, 0.3, 0.45, 0.65, 1.5, 2.2)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real")
    parser.add_argument("out")
    parser.add_argument("--fold", default="0/5", help="fold held out (never written), as in nanofind train")
    parser.add_argument("--split-seed", type=int, default=0)
    args = parser.parse_args()
    fold, folds = (int(v) for v in args.fold.split("/"))
    train, _ = split(load_folder(args.real, keep_raw=True), (fold, folds), args.split_seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for factor in FACTORS:
        copies = []
        for x in train:
            image = resample(np.asarray(x.raw, np.float32), factor, order=1)
            mask = resample(x.mask.astype(np.float32), factor, order=1) >= 0.5
            copies.append((Path(x.source).stem.removeprefix("img_"), image, mask))
        side = copies[0][1].shape[0]
        per_row = max(1, math.ceil(256 / side))
        group = per_row * per_row
        for start in range(0, len(copies), group):
            chunk = copies[start:start + group]
            while len(chunk) < group:  # fill the mosaic with mirrored images of the same factor
                _, image, mask = copies[(start + len(chunk)) % len(copies)]
                chunk.append(("fill", image[::-1], mask[::-1]))
            rows = [np.hstack([c[1] for c in chunk[r * per_row:(r + 1) * per_row]]) for r in range(per_row)]
            masks = [np.hstack([c[2] for c in chunk[r * per_row:(r + 1) * per_row]]) for r in range(per_row)]
            name = f"{chunk[0][0]}_x{factor:g}" + (f"_m{start // group}" if group > 1 else "")
            Image.fromarray(_to_uint8(np.vstack(rows))).save(out / f"img_{name}.png")
            Image.fromarray(np.vstack(masks).astype(np.uint8) * 255).save(out / f"mask_{name}.png")
    print(f"{len(list(out.glob('img_*.png')))} images in {out}")


if __name__ == "__main__":
    main()
