"""Export a dataset to plain files and summarise it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nanofind.datasets.store import DatasetReader
from nanofind.errors import NanofindInputError


def export_dataset(path: str | Path, directory: str | Path) -> int:
    """Write ``img_<i>.tif`` (float32), ``mask_<i>.png`` (0/255), ``instance_<i>.png`` and ``meta_<i>.json`` per sample.

    Indices are zero-padded to the same width. The instance map is a 16-bit PNG holding each
    pixel's particle id (0 off particles). The metadata holds ``pixel_size`` (Å), ``dose``
    (e/Å²), ``defocus`` (Å, positive = underfocus), ``seed``, the full parameter record and the
    particle records (``particles``, ids as in the instance map). Returns the number of samples written.
    """
    import tifffile
    from PIL import Image

    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanofindInputError(f"{directory}: cannot create ({exc.strerror or exc})") from None
    with DatasetReader(path) as reader:
        width = max(4, len(str(int(reader.indices.max())))) if len(reader) else 4
        for s in reader:
            stem = f"{s.index:0{width}d}"
            pixel = s.params.get("pixel_size_A")
            resolution = {"resolution": (1e8 / pixel,) * 2, "resolutionunit": "CENTIMETER"} if pixel else {}
            tifffile.imwrite(directory / f"img_{stem}.tif", s.image.astype(np.float32), **resolution)
            Image.fromarray((s.mask > 0).astype(np.uint8) * 255).save(directory / f"mask_{stem}.png")
            if s.instance.max(initial=0) > np.iinfo(np.uint16).max:
                raise NanofindInputError(f"sample {s.index}: particle ids above 65535 do not fit a 16-bit PNG",
                                         str(path))
            Image.fromarray(s.instance.astype(np.uint16)).save(directory / f"instance_{stem}.png")
            meta = {"index": s.index, "pixel_size": pixel, "pixel_size_unit": "Å",
                    "dose": s.params.get("dose_e_per_A2"), "dose_unit": "e/Å²", "defocus": s.params.get("defocus_A"),
                    "defocus_unit": "Å (defocus = -C10, positive = underfocus)", "seed": s.params.get("seed"),
                    "params": s.params, "particles": s.particles}
            (directory / f"meta_{stem}.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))
        return len(reader)


def describe_dataset(path: str | Path) -> dict:
    """Summary figures of a dataset (or of the parts of an unfinished run)."""
    with DatasetReader(path) as reader:
        if not len(reader):
            return {"path": str(path), "samples": 0}
        pixel, dose, defocus, energy, particle_fraction, materials = [], [], [], [], [], {}
        versions, records, sources, defects = set(), 0, {}, {}
        for k in range(len(reader)):
            p = reader.params(k)
            # tiles of labelled micrographs (dataset from-labeled) have no optics and may lack a pixel size
            for values, key, scale in ((pixel, "pixel_size_A", 1), (dose, "dose_e_per_A2", 1),
                                       (defocus, "defocus_A", 1), (energy, "energy_eV", 1e-3)):
                if p.get(key) is not None:
                    values.append(p[key] * scale)
            particle_fraction.append(float(np.mean(reader.mask(k))))
            versions.add(reader.format_version(k))
            for rec in reader.particles(k):
                records += 1
                sources[rec.get("source")] = sources.get(rec.get("source"), 0) + 1
                for kind in rec.get("defects", []):
                    defects[kind] = defects.get(kind, 0) + 1
            for part in p.get("scene", {}).get("spec", {}).get("particles", []):
                materials[part["material"]] = materials.get(part["material"], 0) + 1
        first = reader.sample(0)
        expected = int(reader.attrs.get("n_samples", len(reader)))
        complete = Path(path).is_file() and len(reader) == expected
        return {"path": str(path), "samples": len(reader), "complete": complete,
                "format_version": sorted(versions)[0] if len(versions) == 1 else sorted(versions),
                "particle_records": records, "particle_records_from": sources, "particle_defects": defects,
                "seed": reader.attrs.get("seed"), "images_per_scene": reader.attrs.get("images_per_scene"),
                "recipe_source": reader.attrs.get("recipe_source"), "image_shape": list(first.image.shape),
                "pixel_size_A": _range(pixel), "dose_e_per_A2": _range(dose), "defocus_A": _range(defocus),
                "energy_keV": sorted(set(energy)) or None,
                "fields_with_particles": int(np.sum(np.array(particle_fraction) > 0)),
                "mean_particle_fraction": float(np.mean(particle_fraction)), "particles_by_material": materials}


def _range(values) -> list[float] | None:
    if not len(values):
        return None
    v = np.asarray(values, float)
    return [float(v.min()), float(v.max())]
