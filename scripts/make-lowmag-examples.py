"""Writes the two bundled low-magnification bright-field examples (example_04.mrc, example_05.png).

Both are simulated with the held-out test recipe (examples/recipes/lowmag-test.yaml, seeds 7 and 8,
which no training used): example_04 as an MRC file that records its pixel size, example_05 as an 8-bit PNG that
does not (so ``--model auto`` has to recognise it from the pixels). Their particle masks are written
beside them (``<stem>_truth.png``) and their facts added to ``examples.json``.

    .venv/bin/python scripts/make-lowmag-examples.py
"""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
from PIL import Image

from nanofind.analyze.pipeline import EXAMPLES_DIR
from nanofind.simulate.brightfield_recipe import make_bright_field_sample
from nanofind.simulate.recipe import load_simulation_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples/recipes/lowmag-test.yaml"
#: file name -> (seed, sample index) of the recipe: isolated Au spheres at 2.5 Å per pixel; Cu plates and
#: tetrahedra at 10 Å per pixel
EXAMPLES = {"example_04.mrc": (7, 40), "example_05.png": (8, 59)}


def main() -> None:
    recipe, raw = load_simulation_recipe(RECIPE)
    info_path = EXAMPLES_DIR / "examples.json"
    info = json.loads(info_path.read_text())
    for name, (seed, index) in EXAMPLES.items():
        sample = make_bright_field_sample(recipe, seed, index, raw)
        path = EXAMPLES_DIR / name
        if path.suffix == ".mrc":
            with mrcfile.new(path, overwrite=True) as mrc:
                mrc.set_data(sample.image.astype(np.float32))
                mrc.voxel_size = sample.params["pixel_size_A"]
        else:
            lo, hi = np.percentile(sample.image, (0.1, 99.9))
            scaled = np.clip((sample.image - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
            Image.fromarray(scaled).save(path)
        truth = f"{path.stem}_truth.png"
        Image.fromarray((sample.mask > 0).astype(np.uint8) * 255).save(EXAMPLES_DIR / truth)
        whole = [p for p in sample.particles if not p["cut_by_edge"]]
        info["files"][name] = {
            "recipe": "examples/recipes/lowmag-test.yaml", "seed": seed, "sample_index": index,
            "kind": "bright_field", "pixel_size_A": round(sample.params["pixel_size_A"], 4),
            "pixel_size_in_file": path.suffix == ".mrc",
            "dose_e_per_A2": sample.params["dose_e_per_A2"], "defocus_A": sample.params["defocus_A"],
            "median_diameter_nm": round(sample.params["median_diameter_nm"], 2),
            "particles": len(sample.particles), "particles_inside": len(whole),
            "median_equivalent_diameter_nm_inside": round(float(np.median([p["equivalent_diameter_nm"]
                                                                          for p in whole])), 2),
            "truth_mask": truth}
    info_path.write_text(json.dumps(info, indent=1) + "\n")


if __name__ == "__main__":
    main()
