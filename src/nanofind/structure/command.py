"""``nanofind structure MODEL... -o OUT``: local structure of atomic models, file in, files out.

Each model is read (any format ASE reads; nanofind scenes keep their labels), analysed with
:func:`~nanofind.structure.analysis.analyze_structure` and written with
:func:`~nanofind.structure.outputs.write_structure_outputs`. A model whose summary in OUT already
records the same file (size and modification time) is skipped, so an interrupted batch resumes.
A model that cannot be read or analysed is reported in one line and the batch goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from ase import Atoms

from nanofind.errors import NanofindInputError
from nanofind.structure.analysis import MAX_ATOMS, analyze_structure, summarize_structure
from nanofind.structure.outputs import output_paths, write_structure_outputs

#: Largest model file read (bytes): about ten million atoms of extended XYZ.
MAX_MODEL_BYTES = 4 * 1024**3


def read_model(path: str | Path) -> Atoms:
    """Read one atomic model (the last frame of a trajectory); one clear error for anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise NanofindInputError(f"{path}: no such file")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise NanofindInputError(f"{path}: {path.stat().st_size / 1024**3:.1f} GiB; models over "
                                 f"{MAX_MODEL_BYTES / 1024**3:.0f} GiB are not read")
    if path.suffix.lower() in (".extxyz", ".xyz"):
        from nanofind.scene.io import read_scene

        atoms = read_scene(path)
    else:
        from ase.io import read

        try:
            atoms = read(path)
        except Exception as exc:  # ASE raises many types for unknown or malformed files
            raise NanofindInputError(f"{path}: not an atomic model ASE can read "
                                     f"({type(exc).__name__}: {exc})") from None
    if isinstance(atoms, list):
        atoms = atoms[-1]
    if len(atoms) == 0:
        raise NanofindInputError(f"{path}: the model has no atoms")
    if len(atoms) > MAX_ATOMS:
        raise NanofindInputError(f"{path}: {len(atoms)} atoms; at most {MAX_ATOMS} are analysed at once")
    return atoms


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _already_done(summary_path: Path, stamp: dict, settings: dict) -> bool:
    try:
        done = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return done.get("model") == stamp and done.get("options") == settings


def run_structure(models: list[str], out_dir: str | Path, *, cutoff_A: float | None = None,
                  sublattices: Literal["auto", "always", "never"] = "auto", quiet: bool = False,
                  report=print) -> tuple[list[dict], list[str]]:
    """Analyse ``models`` into ``out_dir``; return the summaries written (or reused) and the failures.

    Parameters
    ----------
    models : list of str
        Model files.
    out_dir : str or Path
        Output folder (created).
    cutoff_A, sublattices
        Passed to :func:`~nanofind.structure.analysis.analyze_structure`.
    quiet : bool
        No progress bar.
    report : callable
        Receives one line per skipped or failed model.
    """
    from nanofind._progress import ProgressBar

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NanofindInputError(f"{out}: exists and is not a folder")
    stems = [Path(m).name.split(".")[0] or Path(m).name for m in models]
    clash = {s for s in stems if stems.count(s) > 1}
    if clash:
        raise NanofindInputError(f"several models would write {sorted(clash)[0]}.* in {out}; "
                                 "rename them or run them into different folders")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanofindInputError(f"{out}: cannot create the folder ({exc.strerror or exc})") from None
    options = {"cutoff_A": cutoff_A, "sublattices": sublattices}
    summaries: list[dict] = []
    failures: list[str] = []
    with ProgressBar("structure", len(models), enabled=not quiet) as bar:
        for model, stem in zip(models, stems, strict=True):
            bar.describe(f"structure {Path(model).name}")
            paths = output_paths(out, stem)
            try:
                stamp = _stamp(Path(model)) if Path(model).is_file() else None
                if stamp and _already_done(paths["summary"], stamp, options):
                    summaries.append(json.loads(paths["summary"].read_text(encoding="utf-8")))
                    report(f"{model}: already analysed in {paths['summary']}, skipped")
                    bar.advance()
                    continue
                atoms = read_model(model)
                result = analyze_structure(atoms, cutoff_A=cutoff_A, sublattices=sublattices)
                summary = summarize_structure(atoms, result)
                summary["model"] = stamp
                summary["options"] = options
                summary["outputs"] = {k: str(v) for k, v in paths.items()}
                write_structure_outputs(out, stem, atoms, result, summary, title=Path(model).name)
                summaries.append(summary)
            except NanofindInputError as exc:
                failures.append(str(exc))
                report(f"nanofind: error: {exc}")
            bar.advance()
    return summaries, failures
