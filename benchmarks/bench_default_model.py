"""Quality of the shipped model on test data no training run saw (the figures of docs/default-model.md).

Simulates the three test sets if they are missing (full multislice; about 20 minutes on 2 cores),
then runs ``nanofind evaluate`` on each and on the held-out real fold, and prints one JSON line
with the model's pooled Dice per set and the empty-field false-positive fraction.

    python benchmarks/bench_default_model.py [--work DIR] [--real DIR] [--model DIR] [--tta]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: name -> (recipe, number of fields, seed); none of these seeds trained the shipped model
TEST_SETS = {"test-ms": ("segmentation-test.yaml", 32, 3), "test-envelope": ("default.yaml", 12, 3),
             "test-empty": ("segmentation-test-empty.yaml", 16, 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="default-model-test", help="where test sets and reports go")
    parser.add_argument("--real", default=str(ROOT.parent / "shared/data/real-tem-np/train"),
                        help="the 20 labelled real micrographs (fold 0 of 5 is held out of training)")
    parser.add_argument("--model", default="default", help="model directory (default: the shipped model)")
    parser.add_argument("--tta", action="store_true", help="evaluate with mirror averaging (evaluate --tta)")
    args = parser.parse_args()
    tta = ["--tta"] if args.tta else []

    from nanofind.cli import main as nanofind

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, (recipe, n, seed) in TEST_SETS.items():
        data = work / f"{name}.h5"
        if not data.is_file():
            assert nanofind(["simulate", str(ROOT / "examples/recipes" / recipe), "-n", str(n), "-o", str(data),
                             "--seed", str(seed), "--quiet"]) == 0
        assert nanofind(["evaluate", str(data), "--model", args.model, "-o", str(work / f"eval-{name}"),
                         "--quiet", *tta]) == 0
        result[name] = json.loads((work / f"eval-{name}" / "summary.json").read_text())["methods"]
    if Path(args.real).is_dir():
        assert nanofind(["evaluate", args.real, "--fold", "0/5", "--model", args.model, "-o", str(work / "eval-real"),
                         "--quiet", *tta]) == 0
        result["real-fold-0"] = json.loads((work / "eval-real" / "summary.json").read_text())["methods"]
    fp_key = "empty_field_false_positive_fraction"
    from nanofind.learn.engine import choose_engine

    print(json.dumps({**{name: {"model_dice": m["model"]["dice"], "otsu_dice": m["otsu"]["dice"],
                                "fourier_dice": m["fourier"]["dice"],
                                **({fp_key: m["model"][fp_key]} if fp_key in m["model"] else {}),
                                # one-to-one IoU > 0.5 particle matching (nanofind.segment.particle_metrics)
                                "model_particles": m["model"].get("particles"),
                                "otsu_particles": m["otsu"].get("particles")}
                         for name, m in result.items()}, "engine": choose_engine().record()}))


if __name__ == "__main__":
    main()
