"""``nanofind library build``: prototypes × zone axes rendered into a library file, in parallel.

Each prototype is one task of :func:`nanofind._parallel.run_tasks` (the runner of ``simulate``);
its entries are written to ``LIBRARY.h5.parts/`` as they finish, so an interrupted build resumes
where it stopped (parts made from another spec are not reused), and the parts are merged at the end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from nanofind.errors import NanofindInputError
from nanofind.library.descriptor import FIELD_A, entry_descriptor
from nanofind.library.prototypes import Prototype, ase_bulk_prototype, builtin_prototypes, cif_prototype
from nanofind.library.render import render_haadf, render_hrtem
from nanofind.library.spec import LibrarySpec
from nanofind.library.store import read_library, write_library
from nanofind.library.zones import zone_axes, zone_label


def prototype_sources(spec: LibrarySpec) -> list[tuple[str, ...]]:
    """The tasks of a build, in library order.

    Each is ``("builtin", type, formula)``, ``("cif", path)`` or
    ``("ase_bulk", name, crystalstructure, a, c)``.
    """
    sources: list[tuple[str, ...]] = []
    chosen = spec.prototypes.builtin
    if chosen != "none":
        types = None if chosen == "all" else chosen
        sources += [("builtin", p.prototype, p.formula) for p in builtin_prototypes(types, spec.prototypes.formulas)]
    sources += [("cif", path) for path in spec.prototypes.cif]
    sources += [("ase_bulk", b.name, b.crystalstructure, str(b.a_A), "" if b.c_A is None else str(b.c_A))
                for b in spec.prototypes.ase_bulk]
    if not sources:
        raise NanofindInputError("the spec selects no prototypes", "prototypes")
    return sources


def _prototype(source: tuple[str, ...]) -> Prototype:
    if source[0] == "cif":
        return cif_prototype(source[1])
    if source[0] == "ase_bulk":
        return ase_bulk_prototype(source[1], source[2], float(source[3]), float(source[4]) if source[4] else None)
    return builtin_prototypes([source[1]], [source[2]])[0]


def variants_of(spec: LibrarySpec) -> list:
    """What the images of one entry differ in: the defoci (Å) for HRTEM, one plain image for HAADF."""
    return [float(d) for d in spec.hrtem.defocus_A] if spec.renderer == "hrtem" else [None]


def prototype_entries(spec_json: str, source: tuple[str, ...]) -> list[dict]:
    """The library entries of one prototype: every distinct zone, projected and rendered (a build task)."""
    spec = LibrarySpec.model_validate_json(spec_json)
    prototype = _prototype(source)
    shape = (spec.image_px, spec.image_px)
    p = spec.pixel_size_A
    centre = (spec.image_px * p / 2, spec.image_px * p / 2)
    entries = []
    for uvw, projection in zone_axes(prototype, spec.max_index, min_column_distance_A=spec.min_column_distance_A,
                                     exponent=spec.z_exponent, merge_distance_A=spec.merge_distance_A):
        if spec.renderer == "haadf":
            images = render_haadf(projection, shape, p, sigma_A=spec.sigma_A, shift_A=centre)[None]
            side = int(round(FIELD_A / p))  # the spectrum's field is the queries'
            big = render_haadf(projection, (side, side), p, sigma_A=spec.sigma_A)
            descriptors = entry_descriptor(big, p)[None]
        else:
            side = max(spec.image_px, int(round(FIELD_A / p)))
            big = render_hrtem(prototype.atoms, uvw, (side, side), p, spec.hrtem)
            descriptors = np.array([entry_descriptor(image, p) for image in big])
            top = (side - spec.image_px) // 2
            images = big[:, top:top + spec.image_px, top:top + spec.image_px]
        entries.append(dict(prototype=prototype.prototype, formula=prototype.formula,
                            zone=zone_label(uvw, prototype.hexagonal), uvw=uvw, spacegroup=prototype.spacegroup,
                            hexagonal=prototype.hexagonal, cell_A=projection.cell_A, repeat_A=projection.repeat_A,
                            xy_A=projection.positions_A, number=projection.numbers,
                            atoms_per_A=projection.atoms_per_A, weight_per_A=projection.z_weight_per_A,
                            images=images, descriptors=descriptors))
    return entries


def _entries_of(library) -> list[dict]:
    """A part file's entries back as dicts (for the merge)."""
    out = []
    for i in range(len(library)):
        a, b = library.column_start[i], library.column_start[i + 1]
        out.append(dict(prototype=library.prototype[i], formula=library.formula[i], zone=library.zone[i],
                        uvw=tuple(int(x) for x in library.uvw[i]), spacegroup=int(library.spacegroup[i]),
                        hexagonal=bool(library.hexagonal[i]), cell_A=library.cell_A[i],
                        repeat_A=float(library.repeat_A[i]), xy_A=library.xy_A[a:b], number=library.number[a:b],
                        atoms_per_A=library.atoms_per_A[a:b], weight_per_A=library.weight_per_A[a:b],
                        images=library.images[i], descriptors=library.descriptors[i]))
    return out


def build_library(spec: LibrarySpec, output: str | Path, *, workers: int | None = None, scheduler=None,
                  progress=None) -> dict:
    """Build the library of ``spec`` into ``output`` (HDF5); returns a summary record.

    ``progress(done, total)`` is called as prototypes finish. Parts of an interrupted build with the
    same spec are reused.
    """
    from nanofind._parallel import run_tasks

    output = Path(output)
    if output.exists() and output.is_dir():
        raise NanofindInputError("is a folder, not a library file", str(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    spec_json = spec.model_dump_json()
    digest = hashlib.sha256(spec_json.encode()).hexdigest()[:16]
    parts = output.with_name(output.name + ".parts")
    stamp = parts / "spec.sha256"
    if parts.is_dir() and (not stamp.is_file() or stamp.read_text().strip() != digest):
        shutil.rmtree(parts)
    parts.mkdir(exist_ok=True)
    stamp.write_text(digest)
    sources = prototype_sources(spec)
    variants = variants_of(spec)
    spec_record = json.loads(spec_json)

    def part(k: int) -> Path:
        return parts / f"{k:05d}.h5"

    todo = [k for k in range(len(sources)) if not part(k).is_file()]
    done = len(sources) - len(todo)
    if progress:
        progress(done, len(sources))
    tasks = [(spec_json, sources[k]) for k in todo]
    for index, entries in run_tasks(prototype_entries, tasks, workers=workers, scheduler=scheduler):
        k = todo[index]
        if entries:
            write_library(part(k), entries, renderer=spec.renderer, pixel_size_A=spec.pixel_size_A,
                          spec=spec_record, variants=variants)
        else:
            part(k).write_bytes(b"")  # a prototype without resolvable zones: done, nothing to merge
        done += 1
        if progress:
            progress(done, len(sources))
    entries = []
    for k in range(len(sources)):
        if part(k).stat().st_size:
            entries += _entries_of(read_library(part(k)))
    if not entries:
        raise NanofindInputError("no zone axis passed min_column_distance_A: lower it or raise max_index",
                                 "min_column_distance_A")
    write_library(output, entries, renderer=spec.renderer, pixel_size_A=spec.pixel_size_A, spec=spec_record,
                  variants=variants)
    shutil.rmtree(parts)
    types = sorted({e["prototype"] for e in entries})
    return {"entries": len(entries), "prototypes": len(sources), "structure_types": types,
            "renderer": spec.renderer, "variants": variants, "output": str(output)}
