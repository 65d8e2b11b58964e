"""The YAML specification of a structure library (``nanofind library build SPEC.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nanofind.errors import NanofindInputError
from nanofind.library.prototypes import BUILTIN_TYPES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AseBulk(_Strict):
    """One crystal made by ``ase.build.bulk`` (lengths in Å)."""

    name: str
    crystalstructure: str
    a_A: float = Field(gt=0, le=50)
    c_A: float | None = Field(None, gt=0, le=100)


class PrototypeSources(_Strict):
    """Where the crystals come from."""

    builtin: list[str] | Literal["all", "none"] = "all"
    formulas: list[str] | None = Field(None, description="keep only these built-in materials")
    cif: list[str] = Field(default_factory=list, description="CIF files, relative to the spec's folder")
    ase_bulk: list[AseBulk] = Field(default_factory=list, description="crystals from ase.build.bulk")

    @field_validator("builtin")
    @classmethod
    def _known(cls, value):
        if isinstance(value, list):
            unknown = [t for t in value if t not in BUILTIN_TYPES]
            if unknown:
                raise ValueError(f"unknown structure type {unknown[0]!r}; built-in types: {', '.join(BUILTIN_TYPES)}")
        return value


class HrtemSettings(_Strict):
    """HRTEM rendering through nanofind's simulator (defocus positive = underfocus, Å)."""

    energy_eV: float = Field(300e3, gt=0)
    Cs_A: float = Field(-1.5e5, description="spherical aberration, Å (aberration-corrected default: −15 µm)")
    defocus_A: list[float] = Field(default_factory=lambda: [-100.0 + 25.0 * k for k in range(9)], min_length=1,
                                   max_length=16, description="one image per defocus, Å")
    thickness_A: float = Field(40.0, gt=0, le=500)
    mode: Literal["phase_object", "multislice"] = "phase_object"
    focal_spread_A: float = Field(20.0, ge=0)
    sampling_A: float = Field(0.05, gt=0, le=0.2, description="simulation sampling, Å")


class LibrarySpec(_Strict):
    """What ``nanofind library build`` makes.

    ``pixel_size_A`` and ``image_px`` fix the stored images; ``max_index`` bounds the zone indices
    (each |u|, |v|, |w|); atoms projected within ``merge_distance_A`` of each other are one column,
    and zones whose columns then lie closer than ``min_column_distance_A`` are left out;
    ``sigma_A`` and ``z_exponent`` are the convolution model's blur and Z^n weight.
    """

    name: str = "library"
    renderer: Literal["haadf", "hrtem"] = "haadf"
    pixel_size_A: float = Field(0.2, ge=0.05, le=0.5)
    image_px: int = Field(96, ge=32, le=512)
    max_index: int = Field(3, ge=1, le=6)
    min_column_distance_A: float = Field(0.6, ge=0, le=3)
    merge_distance_A: float = Field(0.3, ge=0, le=1)
    sigma_A: float = Field(0.45, gt=0, le=2)
    z_exponent: float = Field(1.7, ge=0, le=3)
    prototypes: PrototypeSources = Field(default_factory=PrototypeSources)
    hrtem: HrtemSettings = Field(default_factory=HrtemSettings)


def load_spec(path: str | Path) -> LibrarySpec:
    """Read and validate a library spec (YAML, safe loader); one-line errors name the file and field."""
    from nanofind.scene.recipe import parse_recipe, read_recipe_yaml

    data = read_recipe_yaml(path)
    if data is None:
        data = {}
    spec = parse_recipe(data, str(path), model=LibrarySpec)
    base = Path(path).resolve().parent
    for k, cif in enumerate(spec.prototypes.cif):
        full = Path(cif) if Path(cif).is_absolute() else base / cif
        if not full.is_file():
            raise NanofindInputError(f"{path}: prototypes.cif[{k}]: no such file {full}")
        spec.prototypes.cif[k] = str(full)
    return spec
