"""The ``nanofind`` command line.

Every failure caused by the input (a bad recipe field, an unreadable or unwritable file)
prints one line naming the field or file and exits with status 2; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from nanofind._version import __version__
from nanofind.errors import NanofindInputError


def _whole_number(minimum: int, name: str = ""):
    """An argparse type: an integer >= ``minimum``; errors start with ``name`` when given."""
    prefix = f"{name} " if name else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{prefix}must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{prefix}must be >= {minimum}, got {value}")
        return value

    return parse


_seed = _whole_number(0, "seed")
_count = _whole_number(1)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as for every other input error
        self.exit(2, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nanofind", description="Machine-learning analysis of HRTEM micrographs of nanoparticles.")
    parser.add_argument("--version", action="version", version=f"nanofind {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    scene = sub.add_parser("scene", help="build an atomic scene from a YAML recipe",
                           description="Build an atomic scene (particles on a substrate, with per-atom labels) "
                                       "from a YAML recipe and write it as extended XYZ.")
    scene.add_argument("recipe", help="YAML recipe (see examples/recipes)")
    scene.add_argument("-o", "--output", required=True, help="output .extxyz file")
    scene.add_argument("--seed", type=_seed, default=0, help="random seed (default 0); same recipe + seed = same atoms")
    scene.add_argument("--also", action="append", choices=["prismatic", "cif"], default=[],
                       help="also write OUTPUT with suffix .prismatic.xyz or .cif (repeatable)")
    scene.add_argument("--preview", metavar="PNG", help="also draw the scene and its ground truth to a PNG")
    scene.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    scene.set_defaults(func=_cmd_scene)

    sim = sub.add_parser("simulate", help="simulate a training dataset of HRTEM images with ground truth",
                         description="Simulate N HRTEM images (multislice, optics, detector noise) with particle "
                                     "masks, grain and column maps from a YAML simulation recipe, into HDF5.")
    sim.add_argument("recipe", help="YAML simulation recipe (see examples/recipes/default.yaml)")
    sim.add_argument("-n", type=_count, required=True, help="number of images")
    sim.add_argument("-o", "--output", required=True, help="output .h5 file")
    sim.add_argument("--seed", type=_seed, default=0, help="dataset seed (default 0); image i depends on (seed, i)")
    sim.add_argument("--workers", type=_count, default=None, help="local worker processes (default: one per core)")
    sim.add_argument("--resume", action="store_true", help="continue an interrupted run, or extend a finished one")
    sim.add_argument("--scheduler", metavar="ADDR", help="run on a Dask distributed scheduler, e.g. tcp://host:8786")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(func=_cmd_simulate)

    ds = sub.add_parser("dataset", help="inspect or export a dataset")
    ds_sub = ds.add_subparsers(dest="dataset_command", metavar="ACTION", parser_class=_Parser, required=True)
    show = ds_sub.add_parser("show", help="summarise a dataset")
    show.add_argument("dataset", help=".h5 dataset")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_cmd_dataset_show)
    export = ds_sub.add_parser("export", help="write img_<i>.tif, mask_<i>.png and meta_<i>.json files")
    export.add_argument("dataset", help=".h5 dataset")
    export.add_argument("directory", help="output directory")
    export.set_defaults(func=_cmd_dataset_export)
    return parser


def _cmd_simulate(args: argparse.Namespace) -> int:
    from nanofind.datasets.generate import generate_dataset
    from nanofind.simulate.recipe import load_simulation_recipe

    _, raw = load_simulation_recipe(args.recipe)
    report = generate_dataset(raw, str(args.recipe), args.n, args.output, args.seed, workers=args.workers,
                              resume=args.resume, scheduler=args.scheduler, progress=not args.quiet)
    rate = report.made / report.seconds if report.seconds > 0 else float("inf")
    print(f"{report.n_samples} images in {report.path} ({report.made} made, {report.reused} kept) "
          f"in {report.seconds:.1f} s, {rate:.2f} images/s", file=sys.stderr)
    return 0


def _cmd_dataset_show(args: argparse.Namespace) -> int:
    from nanofind.datasets.export import describe_dataset

    info = describe_dataset(args.dataset)
    if args.json:
        print(json.dumps(info, indent=1, ensure_ascii=False))
        return 0
    for key, value in info.items():
        print(f"{key:24s} {value}")
    return 0


def _cmd_dataset_export(args: argparse.Namespace) -> int:
    from nanofind.datasets.export import export_dataset

    n = export_dataset(args.dataset, args.directory)
    print(f"{n} samples exported to {args.directory}", file=sys.stderr)
    return 0


def _extra_path(output: Path, kind: str) -> Path:
    stem = output.name.removesuffix(".extxyz").removesuffix(".xyz")
    return output.with_name(stem + (".prismatic.xyz" if kind == "prismatic" else ".cif"))


def _cmd_scene(args: argparse.Namespace) -> int:
    from nanofind.scene.build import build_scene
    from nanofind.scene.io import check_writable, write_cif, write_extxyz, write_prismatic
    from nanofind.scene.recipe import load_recipe
    from nanofind.scene.summary import summarize_scene

    output = Path(args.output)
    if output.suffix not in (".extxyz", ".xyz"):
        raise NanofindInputError(f"{output}: output must end in .extxyz (or .xyz)")
    if output.name.endswith(".prismatic.xyz"):
        raise NanofindInputError(f"{output}: the main output is extended XYZ; use --also prismatic for Prismatic")
    check_writable(output)
    extras = {kind: check_writable(_extra_path(output, kind)) for kind in dict.fromkeys(args.also)}
    if args.preview:
        if not args.preview.lower().endswith(".png"):
            raise NanofindInputError(f"{args.preview}: --preview must name a .png file")
        extras["preview"] = check_writable(args.preview)
    recipe = load_recipe(args.recipe)
    start = time.perf_counter()
    try:
        atoms, spec = build_scene(recipe, args.seed)
    except NanofindInputError as err:  # say which recipe the field belongs to
        raise NanofindInputError(f"{args.recipe}: {err}") from None
    elapsed = time.perf_counter() - start
    atoms.info["nanofind_recipe"] = recipe.model_dump(mode="json", exclude_none=True)
    atoms.info["nanofind_recipe_path"] = str(args.recipe)
    atoms.info["nanofind_spec"] = spec
    atoms.info["nanofind_version"] = __version__
    write_extxyz(output, atoms)
    for kind, path in extras.items():
        if kind == "prismatic":
            write_prismatic(path, atoms, comment=f"nanofind {__version__} {args.recipe} seed={args.seed}")
        elif kind == "cif":
            write_cif(path, atoms)
        else:
            from nanofind.scene.preview import render_preview

            render_preview(atoms, path, title=f"{Path(args.recipe).name}, seed {args.seed}")
    summary = summarize_scene(atoms)
    summary.update({"recipe": str(args.recipe), "seed": args.seed, "output": str(output),
                    "build_seconds": round(elapsed, 3), "also": [str(p) for p in extras.values()]})
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{summary['recipe']} (seed {summary['seed']})")
    for col in ("object", "atoms", "elements", "grains", "defect atoms"):
        table.add_column(col, justify="left" if col in ("object", "elements") else "right")
    for o in summary["objects"]:
        elements = ", ".join(f"{k} {v}" for k, v in o["elements"].items())
        table.add_row(o["name"], str(o["atoms"]), elements, str(o["grains"]), str(o["defect_atoms"]))
    console.print(table)
    dists = ", ".join(f"{k} {v:.3f}" for k, v in summary["min_distance_A"].items() if v != float("inf"))
    console.print(f"minimum distances (Å): {dists}")
    cell = " x ".join(f"{v:.1f}" for v in summary["cell_A"])
    console.print(f"{summary['atoms']} atoms in a {cell} Å cell, built in {summary['build_seconds']:.3f} s "
                  f"-> {summary['output']}" + "".join(f", {p}" for p in summary["also"]))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nanofind`` command; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NanofindInputError as exc:
        print(f"nanofind: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nanofind: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # no traceback for users; NANOFIND_DEBUG=1 shows it
        if os.environ.get("NANOFIND_DEBUG"):
            raise
        print(f"nanofind: internal error: {type(exc).__name__}: {exc} (set NANOFIND_DEBUG=1 for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
