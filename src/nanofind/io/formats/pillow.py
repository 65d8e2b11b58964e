"""PNG and JPEG micrographs through Pillow; these formats record no pixel size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nanofind.io.checks import check_pixels
from nanofind.io.files import check_signature


def read_pillow(path: Path, *, size_bytes: int, head: bytes, format_name: str):
    """Pixels (rows, columns) of a PNG or JPEG file: 16-bit and float kept, others as 8-bit grey; no pixel size."""
    from PIL import Image, ImageFile

    check_signature(path, format_name, head)
    limit, truncated_ok = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    # Pillow's own pixel limit is replaced by the read's, checked below; a truncated image is an error.
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
    try:
        with Image.open(path) as im:  # parses the header only; pixels are decoded by convert()
            width, height = im.size
            check_pixels(path, format_name=format_name, n_pixels=width * height, what=f"{width}x{height} pixels")
            mode = im.mode
            data = np.asarray(im.convert("I;16") if mode in ("I;16", "I;16B") else im.convert("F")
                              if mode in ("I", "F") else im.convert("L"))
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = limit, truncated_ok
    return data, None, {"format": path.suffix.lower().lstrip("."), "mode": mode}
