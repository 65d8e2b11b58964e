"""The built-in readers, one module per format family, registered by suffix on import.

=================  ========================  ==========================================
suffixes           format                    reader
=================  ========================  ==========================================
.mrc .mrcs         MRC                       :func:`.mrc.read_mrc` (mrcfile)
.tif .tiff         TIFF                      :func:`.tiff.read_tiff` (tifffile, rsciio)
.png / .jpg .jpeg  PNG / JPEG                :func:`.pillow.read_pillow` (Pillow)
.dm3 .dm4          DM3 / DM4                 :func:`.vendor.read_dm` (rsciio)
.ser .emi          SER / EMI                 :func:`.vendor.read_tia` (rsciio)
.emd               EMD                       :func:`.vendor.read_emd` (rsciio, h5py)
=================  ========================  ==========================================

``.emi`` is read on request but left out of folder scans: each only describes the
``<name>_<n>.ser`` files next to it, which hold the images (a scan would read them twice).
The readers import their libraries when first called, so importing :mod:`nanofind.io` stays cheap.
"""

from nanofind.io.formats.mrc import read_mrc
from nanofind.io.formats.pillow import read_pillow
from nanofind.io.formats.tiff import read_tiff
from nanofind.io.formats.vendor import read_dm, read_emd, read_tia
from nanofind.io.registry import register_reader

# Registration order is the order of nanofind.io.SUFFIXES.
register_reader((".mrc", ".mrcs"), read_mrc, format_name="MRC")
register_reader((".tif", ".tiff"), read_tiff, format_name="TIFF")
register_reader((".png",), read_pillow, format_name="PNG")
register_reader((".jpg", ".jpeg"), read_pillow, format_name="JPEG")
register_reader((".dm3",), read_dm, format_name="DM3")
register_reader((".dm4",), read_dm, format_name="DM4")
register_reader((".ser",), read_tia, format_name="SER")
register_reader((".emi",), read_tia, format_name="EMI", in_folder_scans=False)
register_reader((".emd",), read_emd, format_name="EMD")

__all__ = ["read_dm", "read_emd", "read_mrc", "read_pillow", "read_tia", "read_tiff"]
