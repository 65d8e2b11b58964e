"""Reading micrographs from microscope and image formats."""

from nanofind.io.micrograph import Micrograph, read_micrograph

__all__ = ["Micrograph", "read_micrograph"]
