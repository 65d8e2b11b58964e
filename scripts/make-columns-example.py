"""Writes the bundled atomic-columns example: one CeO2 particle along [110], full multislice HRTEM.

Simulated with examples/recipes/columns-ceo2-110.yaml (seed and group below, which no training
used) into ``src/nanofind/columns/examples/``:

- ``ceo2_110.tif``: the image, 32-bit float, its pixel size in the ImageJ metadata (nm);
- ``ceo2_110_truth.csv``: every particle column inside the image, ``x_A,y_A,height,element`` (Å
  from the top-left corner of the top-left pixel; atoms along the beam; the column's element), from
  the scene itself;
- ``ceo2_110.json``: what made it (recipe, seed, group, pixel size, dose, defocus, nanofind version).

    .venv/bin/python scripts/make-columns-example.py
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import tifffile

from nanofind import __version__
from nanofind.columns.training import column_sublattices
from nanofind.simulate.pipeline import simulate_group
from nanofind.simulate.recipe import load_simulation_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples/recipes/columns-ceo2-110.yaml"
OUT = ROOT / "src/nanofind/columns/examples"
SEED, GROUP = 16017, 0


def main() -> None:
    """Simulate the example and write its three files."""
    recipe, raw = load_simulation_recipe(RECIPE)
    sample = simulate_group(recipe, SEED, GROUP, recipe_record=raw)[0]
    pixel = float(sample.params["pixel_size_A"])
    OUT.mkdir(parents=True, exist_ok=True)
    image = sample.image.astype(np.float32)
    tifffile.imwrite(OUT / "ceo2_110.tif", image, imagej=True, resolution=(10 / pixel, 10 / pixel),
                     metadata={"unit": "nm"}, compression="zlib")
    with open(OUT / "ceo2_110_truth.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["x_A", "y_A", "height", "element"])
        elements = ("Ce", "O")
        for (x, y, height, _grain), lattice in zip(sample.columns, column_sublattices(sample, elements), strict=True):
            writer.writerow([f"{x:.4f}", f"{y:.4f}", int(height), elements[lattice]])
    record = {"recipe": str(RECIPE.relative_to(ROOT)), "seed": SEED, "group": GROUP, "nanofind_version": __version__,
              "pixel_size_A": pixel, "shape": list(image.shape), "dose_e_per_A2": sample.params["dose_e_per_A2"],
              "defocus_A": sample.params["defocus_A"], "columns": len(sample.columns),
              "particle_diameter_A": sample.params["scene"]["spec"]["particles"][0].get("diameter_A")}
    (OUT / "ceo2_110.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
