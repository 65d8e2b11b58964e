"""Structure matching against libraries of simulated crystal images (seed 003).

``nanofind library build`` renders prototypes (built-in structure types, CIF files) along every
distinct zone axis into a library file; ``nanofind match`` ranks the entries for a micrograph by
SSIM, by the earth mover's distance between column peak sets, and by MSE, after registration.

From Python::

    from nanofind.library import read_library, match_image
    library = read_library("library.h5")
    matches, record = match_image(library, image, pixel_size_A=0.1, metric="ssim")
    library.label(matches[0].entry)          # "zincblende CdTe [1 1 0]"
"""

from nanofind.library.match import Match, emd, match_image, mse, ssim
from nanofind.library.prototypes import BUILTIN_TYPES, Prototype, builtin_prototypes, cif_prototype
from nanofind.library.store import Library, read_library
from nanofind.library.zones import Projection, distinct_zones, project, zone_label

__all__ = ["BUILTIN_TYPES", "Library", "Match", "Projection", "Prototype", "builtin_prototypes", "cif_prototype",
           "distinct_zones", "emd", "match_image", "mse", "project", "read_library", "ssim", "zone_label"]
