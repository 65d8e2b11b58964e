"""A picture of a scene: the view along the beam, a side view and the projected ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from nanofind._files import write_atomic
from nanofind.scene.labels import project_labels


def render_preview(atoms: Atoms, path: str | Path, *, pixel_size_A: float = 0.25, title: str = "") -> Path:
    """Write a PNG with three panels: beam view, side view (x–z) and the grain map.

    Particle atoms are coloured by grain, substrate atoms are grey. The grain map is the
    ground truth of :func:`nanofind.scene.labels.project_labels` at ``pixel_size_A`` (Å),
    drawn with rows along y (origin at the lower left, as in the scene).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    lx, ly, lz = atoms.cell.lengths()
    particle = np.asarray(atoms.arrays["is_particle"], dtype=bool)
    grain = np.asarray(atoms.arrays["grain_id"])
    cmap = plt.get_cmap("tab20")
    colours = cmap((grain[particle] % 20) / 19.0) if particle.any() else np.zeros((0, 4))
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2), constrained_layout=True)
    pos, sub = atoms.positions, ~particle

    for ax, (i, j), labels in ((axes[0], (0, 1), ("x (Å)", "y (Å)")), (axes[1], (0, 2), ("x (Å)", "z (Å)"))):
        ax.scatter(pos[sub, i], pos[sub, j], s=0.3, c="0.75", linewidths=0, rasterized=True)
        order = np.argsort(pos[particle, 2 if j == 1 else 1])
        ax.scatter(pos[particle, i][order], pos[particle, j][order], s=2.0, c=colours[order], linewidths=0,
                   rasterized=True)
        ax.set_xlim(0, lx)
        ax.set_ylim(0, ly if j == 1 else lz)
        ax.set_aspect("equal")
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
    axes[0].set_title("along the beam (particles by grain, substrate grey)")
    axes[1].set_title("side view")
    shape = (int(np.ceil(ly / pixel_size_A)), int(np.ceil(lx / pixel_size_A)))
    maps = project_labels(atoms, shape, pixel_size_A)
    shown = np.ma.masked_less(maps.grain.astype(float), 0)
    axes[2].imshow(shown % 20, origin="lower", extent=(0, lx, 0, ly), cmap=cmap, vmin=0, vmax=19,
                   interpolation="nearest")
    axes[2].contour(maps.mask, levels=[0.5], colors="k", linewidths=0.6, origin="lower", extent=(0, lx, 0, ly))
    axes[2].set_title(f"ground truth: grain map and mask ({pixel_size_A} Å pixels)")
    axes[2].set_xlabel("x (Å)")
    axes[2].set_ylabel("y (Å)")
    n_grains = len(set(grain[particle].tolist()))
    fig.suptitle(title or f"{len(atoms)} atoms, {int(particle.sum())} in particles, {n_grains} grains")
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path
