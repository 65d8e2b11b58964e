"""Files written by ``nanofind structure``: per-atom extended XYZ and CSV, a JSON summary, a figure.

For a model ``NAME`` the folder gets

- ``NAME.structure.extxyz``: the model with per-atom arrays ``coordination``, ``order_fcc``,
  ``order_hcp``, ``order_icosahedral``, ``order_fivefold``, ``order_bcc`` (Eq. 2.1 of seed 004;
  ``nan`` where not fitted), ``structure`` (class name), ``particle``, ``grain``,
  ``planar_defect`` and ``fivefold_axis`` (indices into the summary's lists; −1: none);
- ``NAME.atoms.csv``: the same columns, one row per atom, with positions in Å;
- ``NAME.summary.json``: :func:`~nanofind.structure.analysis.summarize_structure`, with the
  model file's size and modification time so that a rerun can skip finished models;
- ``NAME.structure.png``: the view along the beam (z) coloured by class, a one-layer slice through
  each particle's centre coloured by hcp − fcc order (as in seed 004, Fig. 2.3d), and the class
  fractions.

Every file is written atomically; the summary is written last and marks the model done.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import Atoms

from nanofind._files import write_atomic, write_text_atomic
from nanofind.scene.io import write_extxyz
from nanofind.structure.analysis import StructureAnalysis
from nanofind.structure.local import CLASSES
from nanofind.structure.templates import TEMPLATE_NAMES

#: Colours of the classes in figures (matplotlib names).
CLASS_COLOURS = {"other": "0.85", "fcc": "tab:green", "hcp": "tab:red", "rhcp": "tab:orange", "bcc": "tab:brown",
                 "icosahedral": "tab:purple", "fivefold": "tab:blue", "surface": "0.7", "disordered": "black"}
#: Atoms drawn at most per panel (a regular subsample beyond).
_MAX_DRAWN = 200_000
_CSV_CHUNK = 8192


def output_paths(out_dir: Path, stem: str) -> dict[str, Path]:
    """The files written for the model ``stem`` in ``out_dir``."""
    return {"extxyz": out_dir / f"{stem}.structure.extxyz", "csv": out_dir / f"{stem}.atoms.csv",
            "figure": out_dir / f"{stem}.structure.png", "summary": out_dir / f"{stem}.summary.json"}


def per_atom_columns(result: StructureAnalysis) -> dict[str, np.ndarray]:
    """The per-atom result columns, in file order."""
    local, found = result.local, result.defects
    columns = {"coordination": local.coordination.astype(int)}
    for name in TEMPLATE_NAMES:
        columns[f"order_{name}"] = np.round(local.order[name], 4)
    columns["structure"] = np.asarray(CLASSES)[local.structure]
    columns["particle"] = local.particle.astype(int)
    columns["grain"] = found.grain.astype(int)
    columns["planar_defect"] = found.plane.astype(int)
    columns["fivefold_axis"] = found.axis.astype(int)
    return columns


def write_extxyz_result(path: Path, atoms: Atoms, result: StructureAnalysis) -> None:
    """The model with the per-atom result arrays, as extended XYZ."""
    out = atoms.copy()
    for key, values in per_atom_columns(result).items():
        out.arrays[key] = values
    write_extxyz(path, out)


def write_csv(path: Path, atoms: Atoms, result: StructureAnalysis) -> None:
    """One row per atom: index, element, x_A, y_A, z_A and the per-atom result columns."""
    columns = {"index": np.arange(len(atoms)), "element": np.asarray(atoms.get_chemical_symbols()),
               "x_A": np.round(atoms.positions[:, 0], 4), "y_A": np.round(atoms.positions[:, 1], 4),
               "z_A": np.round(atoms.positions[:, 2], 4), **per_atom_columns(result)}
    header = ",".join(columns) + "\n"
    flat = [c.tolist() for c in columns.values()]
    row = ",".join("%s" for _ in columns) + "\n"

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(header)
            for start in range(0, len(atoms), _CSV_CHUNK):
                block = [col[start:start + _CSV_CHUNK] for col in flat]
                fh.write((row * len(block[0])) % tuple(v for r in zip(*block, strict=True) for v in r))

    write_atomic(path, write)


def _subsample(idx: np.ndarray) -> np.ndarray:
    return idx if len(idx) <= _MAX_DRAWN else idx[:: int(np.ceil(len(idx) / _MAX_DRAWN))]


def render_structure(path: Path, atoms: Atoms, result: StructureAnalysis, summary: dict, title: str = "") -> Path:
    """Write the three-panel figure described in the module docstring."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    local = result.local
    names = np.asarray(CLASSES)[local.structure]
    pos = atoms.positions
    analysed = np.flatnonzero(local.structure > 0)
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.4), constrained_layout=True,
                             gridspec_kw={"width_ratios": [1, 1, 0.7]})
    size = float(np.clip(4e4 / max(len(analysed), 1), 0.3, 12))
    drawn_first = ("surface", "fcc", "other", "disordered", "rhcp", "bcc", "hcp", "fivefold", "icosahedral")
    for name in drawn_first:
        idx = _subsample(analysed[names[analysed] == name])
        if len(idx):
            axes[0].scatter(pos[idx, 0], pos[idx, 1], s=size, c=CLASS_COLOURS[name], linewidths=0, rasterized=True,
                            label=f"{name} ({summary['classes'].get(name, {}).get('atoms', 0)})")
    axes[0].set_title("along the beam (z), by class; defects drawn on top")
    axes[0].legend(loc="upper right", fontsize=7, markerscale=max(1.0, 6 / max(size, 0.1) ** 0.5))

    # one close-packed layer through each particle's centre, normal to the beam
    slab = np.zeros(len(atoms), dtype=bool)
    for p in np.unique(local.particle[analysed]):
        members = np.flatnonzero(local.particle == p)
        g = local.group[members[0]]
        half = 0.5 * local.nn_distance_A[g] * np.sqrt(2 / 3)
        zc = np.median(pos[members, 2])
        slab[members[np.abs(pos[members, 2] - zc) < half]] = True
    fitted = slab & np.isfinite(local.order["fcc"]) & np.isfinite(local.order["hcp"])
    rest = np.flatnonzero(slab & ~fitted)
    axes[1].scatter(pos[rest, 0], pos[rest, 1], s=4 * size, c="0.2", linewidths=0, rasterized=True)
    idx = np.flatnonzero(fitted)
    art = axes[1].scatter(pos[idx, 0], pos[idx, 1], s=4 * size, linewidths=0, rasterized=True, cmap="coolwarm",
                          c=np.clip((local.order["hcp"][idx] - local.order["fcc"][idx]) / 3, -1, 1), vmin=-1, vmax=1)
    fig.colorbar(art, ax=axes[1], shrink=0.8, label="(hcp − fcc order) / 3")
    axes[1].set_title("slice through each particle's centre (one layer); dark: < 10 neighbours")
    for ax in axes[:2]:
        ax.set_aspect("equal")
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
        if len(analysed):
            lo, hi = pos[analysed, :2].min(axis=0) - 3, pos[analysed, :2].max(axis=0) + 3
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])

    shown = [c for c in CLASSES[1:] if c in summary["classes"]]
    fractions = [100 * summary["classes"][c]["fraction"] for c in shown]
    axes[2].barh(shown, fractions, color=[CLASS_COLOURS[c] for c in shown])
    for k, f in enumerate(fractions):
        axes[2].text(f, k, f" {f:.1f} %", va="center", fontsize=8)
    axes[2].invert_yaxis()
    axes[2].set_xlabel("% of analysed atoms")
    kinds = ", ".join(f"{v} {k}" for k, v in summary["planar_defects"].items()) or "none"
    n_axes = summary["fivefold_axes"]
    axes[2].set_title(f"{summary['grains']} grains; planar defects: {kinds};\n"
                      f"{n_axes} five-fold {'axis' if n_axes == 1 else 'axes'}", fontsize=9)
    types = ", ".join(p["type"] for p in summary["per_particle"][:6])
    more = "" if len(summary["per_particle"]) <= 6 else f", … ({len(summary['per_particle'])} particles)"
    fig.suptitle((title + ": " if title else "") + types + more)
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def write_structure_outputs(out_dir: Path, stem: str, atoms: Atoms, result: StructureAnalysis, summary: dict,
                            *, title: str = "") -> dict[str, Path]:
    """Write every file of the module docstring; the summary last."""
    paths = output_paths(out_dir, stem)
    write_extxyz_result(paths["extxyz"], atoms, result)
    write_csv(paths["csv"], atoms, result)
    render_structure(paths["figure"], atoms, result, summary, title=title or stem)
    write_text_atomic(paths["summary"], json.dumps(summary, indent=2) + "\n")
    return paths
