"""Make the bundled structure-matching examples in src/nanofind/library/examples/.

- ``library-small.h5``: ``nanofind library build examples/recipes/library-small.yaml``;
- ``cdte_110.tif``: a HAADF-STEM query of CdTe (zinc blende) seen along [1 1 0], rendered atom by atom
  from a 45 Å slab tilted 0.5° (``nanofind.library.queries.render_query``), turned 27°, at 1e5 e/Å²,
  512² px of 0.1 Å (counts, uint16; the pixel size in the ImageJ metadata, nm);
- ``interface.tif``: the same CdTe [1 1 0] on the left and SrTiO3 [1 0 0] on the right of a
  vertical boundary, 512² px of 0.1 Å, for ``nanofind match --window``;
- ``examples.json``: what made them.

    .venv/bin/python scripts/make-library-example.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile

from nanofind._version import __version__
from nanofind.library.build import build_library
from nanofind.library.prototypes import builtin_prototypes
from nanofind.library.queries import QueryConditions, render_query
from nanofind.library.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src/nanofind/library/examples"
PIXEL_A = 0.1


def save(name: str, counts: np.ndarray) -> None:
    tifffile.imwrite(OUT / name, np.clip(counts, 0, 65535).astype(np.uint16), imagej=True,
                     resolution=(10 / PIXEL_A, 10 / PIXEL_A), metadata={"unit": "nm"}, compression="zlib")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    summary = build_library(load_spec(ROOT / "examples/recipes/library-small.yaml"), OUT / "library-small.h5",
                            workers=1)
    cdte = builtin_prototypes(["zincblende"], ["CdTe"])[0]
    sto = builtin_prototypes(["perovskite"], ["SrTiO3"])[0]
    query = QueryConditions(pixel_size_A=PIXEL_A, rotation_deg=27.0, shift_A=(3.1, 1.7), tilt_deg=0.5,
                            tilt_azimuth_deg=40.0, thickness_A=45.0, sigma_A=0.5, dose_e_per_A2=1e5,
                            scan_shear=0.004, scan_jitter_A=0.02)
    save("cdte_110.tif", render_query(cdte.atoms, (1, 1, 0), query, rng=17))
    left = render_query(cdte.atoms, (1, 1, 0), query, rng=18)
    right = render_query(sto.atoms, (1, 0, 0), QueryConditions(**{**query.to_dict(), "rotation_deg": 5.0}), rng=19)
    interface = left.copy()
    interface[:, 256:] = right[:, 256:]
    save("interface.tif", interface)
    record = {"nanofind_version": __version__, "library": summary,
              "cdte_110.tif": {"prototype": "zincblende", "formula": "CdTe", "zone": "[1 1 0]", "seed": 17,
                               "conditions": query.to_dict()},
              "interface.tif": {"left": "zincblende CdTe [1 1 0]", "right": "perovskite SrTiO3 [1 0 0]",
                                "boundary_x_px": 256, "seeds": [18, 19], "conditions": query.to_dict(),
                                "right_rotation_deg": 5.0}}
    (OUT / "examples.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
