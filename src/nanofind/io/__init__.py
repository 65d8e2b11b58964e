"""Reading micrographs from microscope and image formats.

MRC, TIFF, PNG, JPEG, and through RosettaSciIO DigitalMicrograph DM3/DM4, TIA SER/EMI and
Velox or Berkeley EMD; see :mod:`nanofind.io.micrograph`.
"""

from nanofind.io.micrograph import MAX_PIXELS, MIN_SIDE_PX, SUFFIXES, Micrograph, length_in_A, read_micrograph

__all__ = ["MAX_PIXELS", "MIN_SIDE_PX", "SUFFIXES", "Micrograph", "length_in_A", "read_micrograph"]
