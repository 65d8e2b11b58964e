"""Particle counts and sizes from ``nanofind analyze`` against simulated ground truth.

For every field of a nanofind dataset (default: 30 fields of `examples/recipes/analyze-examples.yaml`,
seed 12, which nothing trained on), the field is analysed exactly as `nanofind analyze` does
(shipped model, cleaning, watershed splitting). The truth is the dataset's particle mask put
through the same cleaning (slivers below the 1 nm² minimum area are not counted) and watershed
splitting (touching particles merge in a footprint mask); predicted
and true particles are matched one to one by IoU > 0.5. Reported: the mean absolute error of the
particle count per field, and for isolated true particles of at least 3 nm (not cut by the edge,
not agglomerates) the relative error of the equivalent diameter, and the seconds the analysis of
one field takes (segmentation to measurements, with the engine ``auto`` picks unless told). The last
line is JSON, with the CPU and the engine.

    python benchmarks/bench_analyze.py [DATASET.h5] [--model DIR] [--threshold T] [--tta] [--details CSV]
        [--precision P] [--backend B]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default="analyze-test.h5")
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument("--threshold", type=float, help="decision threshold (default: the model's)")
    parser.add_argument("--tta", action="store_true", help="mirror-image averaging (nanofind analyze --tta)")
    parser.add_argument("--details", help="write every isolated particle's error and imaging conditions to this CSV")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    args = parser.parse_args()

    from nanofind.analyze.measure import find_particles, measure_particles
    from nanofind.analyze.pipeline import AnalysisSettings, analyze_frame
    from nanofind.datasets import DatasetReader
    from nanofind.learn.engine import make_runner
    from nanofind.learn.model_file import load_model
    from nanofind.segment.particle_metrics import match_particles

    model, card = load_model(args.model)
    settings = AnalysisSettings(model=args.model or "default", threshold=args.threshold, tta=args.tta,
                                precision=args.precision, backend=args.backend)
    runner = make_runner(model, args.precision, args.backend, warm_up_px=settings.window_px)
    count_errors, size_errors, details, seconds = [], [], [], []
    with DatasetReader(args.dataset) as reader:
        for k in range(len(reader)):
            s = reader.sample(k)
            pixel = s.params["pixel_size_A"]
            t = time.perf_counter()
            rows, labels, _ = analyze_frame(runner, card, s.image, pixel, settings)
            seconds.append(time.perf_counter() - t)
            truth = find_particles(s.mask > 0, pixel)
            true_rows = measure_particles(truth, pixel_size_A=pixel)
            count_errors.append(len(rows) - len(true_rows))
            pairs = {t: p for t, p, _ in match_particles(labels, truth)}  # one to one, IoU > 0.5
            by_id = {r["particle_id"]: r for r in rows}
            for t in true_rows:
                if t["touches_edge"] or t["agglomerate"] or t["equivalent_diameter_nm"] < 3:
                    continue
                p = by_id.get(pairs.get(t["particle_id"], -1))
                err = None if p is None else p["equivalent_diameter_nm"] / t["equivalent_diameter_nm"] - 1
                size_errors.append(err)
                optics = s.params["optics"]
                materials = sorted({q["material"] for q in s.params["scene"]["spec"]["particles"]})
                details.append({"field": k, "true_nm": round(t["equivalent_diameter_nm"], 3),
                                "found_nm": None if p is None else round(p["equivalent_diameter_nm"], 3),
                                "error": None if err is None else round(err, 4),
                                "materials": "+".join(materials),
                                "pixel_size_A": pixel, "dose_e_per_A2": round(s.params["dose_e_per_A2"]),
                                "Cs_mm": round(optics["Cs_A"] * 1e-7, 4), "defocus_A": round(optics["defocus_A"], 1),
                                "energy_keV": optics["energy_eV"] / 1000})
                if err is not None and abs(err) > 0.1:
                    true_nm, found_nm = t["equivalent_diameter_nm"], p["equivalent_diameter_nm"]
                    print(f"  field {k}: true {true_nm:.2f} nm, found {found_nm:.2f} nm ({err:+.1%})", flush=True)
            print(f"field {k}: {len(rows)} found, {len(true_rows)} true", flush=True)
    if args.details:
        import csv

        with open(args.details, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(details[0]))
            writer.writeheader()
            writer.writerows(details)
    found = [e for e in size_errors if e is not None]
    result = {"fields": len(count_errors), "seconds_per_field": round(float(np.mean(seconds)), 3),
              "count_mae": round(float(np.mean(np.abs(count_errors))), 3),
              "count_bias": round(float(np.mean(count_errors)), 3),
              "isolated_particles_3nm": len(size_errors), "matched": len(found),
              "diameter_within_10_percent":
                  round(float(np.mean([abs(e) <= 0.10 for e in found])), 4) if found else None,
              "diameter_median_abs_error": round(float(np.median(np.abs(found))), 4) if found else None,
              "diameter_max_abs_error": round(float(np.max(np.abs(found))), 4) if found else None,
              "diameter_mean_error": round(float(np.mean(found)), 4) if found else None,
              "engine": runner.engine.record()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
