"""Reading micrographs from microscope and image formats.

MRC, TIFF, PNG, JPEG, and through RosettaSciIO DigitalMicrograph DM3/DM4, TIA SER/EMI and
Velox or Berkeley EMD; see :mod:`nanofind.io.micrograph`. One reader per format, registered by file
name suffix (:func:`register_reader`, :mod:`nanofind.io.formats`); the checks every file goes
through are in :mod:`nanofind.io.files` and :mod:`nanofind.io.checks`. Data bars, scale bars and
label boxes burned into exported images, and the unlit area outside a beam, are found by
:func:`find_annotations` (:mod:`nanofind.io.annotations`), and left out by ``segment`` and ``analyze``.
"""

from nanofind.io.annotations import Annotations, find_annotations
from nanofind.io.checks import MAX_PIXELS, MIN_SIDE_PX, length_in_A
from nanofind.io.micrograph import SUFFIXES, Micrograph, array_and_pixel_size, read_micrograph
from nanofind.io.registry import register_reader

__all__ = ["MAX_PIXELS", "MIN_SIDE_PX", "SUFFIXES", "Annotations", "Micrograph", "array_and_pixel_size",
           "find_annotations", "length_in_A", "read_micrograph", "register_reader"]
