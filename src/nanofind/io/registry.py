"""Which reader reads which file: a registry from file name suffix to format name and reader.

A reader is a function ``reader(path, *, size_bytes, head, format_name)`` returning
``(array, pixel_size_A, metadata)``: the pixels as the file stores them (any numeric dtype, rows
along y, colour samples last), the pixel size in Å or ``None``, and a JSON-able ``dict``. It runs
after the checks of :mod:`nanofind.io.files` (``head`` holds the file's first bytes) and must check
what the header declares with :func:`nanofind.io.checks.check_pixels` and
:func:`~nanofind.io.checks.check_extent` before reading pixels; :func:`nanofind.io.read_micrograph`
applies the value checks to what it returns. The built-in readers are registered by
:mod:`nanofind.io.formats`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: ``reader(path, *, size_bytes, head, format_name) -> (array, pixel_size_A or None, metadata)``.
Reader = Callable[..., tuple[np.ndarray, float | None, dict]]


@dataclass(frozen=True)
class RegisteredFormat:
    """One suffix's entry: the format's name (``"MRC"``), its reader, and whether folder scans pick it."""

    format_name: str
    reader: Reader
    in_folder_scans: bool


_REGISTRY: dict[str, RegisteredFormat] = {}


def register_reader(suffixes: Iterable[str], reader: Reader, *, format_name: str, in_folder_scans: bool = True,
                    replace: bool = False) -> None:
    """Register ``reader`` for files whose names end with one of ``suffixes`` (``".mrc"``; any case).

    ``format_name`` names the format in messages and is passed to the reader. With
    ``in_folder_scans=False`` the suffix is read on request but left out of :func:`folder_suffixes`
    (a TIA ``.emi`` file only describes the ``.ser`` files next to it). Registering a suffix that
    already has a reader raises ``ValueError`` unless ``replace`` is true.
    """
    suffixes = [str(s).lower() for s in suffixes]
    for suffix in suffixes:
        if not suffix.startswith(".") or len(suffix) < 2:
            raise ValueError(f"a suffix starts with a dot and names an ending, got {suffix!r}")
        if suffix in _REGISTRY and not replace:
            raise ValueError(f"{suffix} already has a reader ({_REGISTRY[suffix].format_name}); pass replace=True")
    for suffix in suffixes:
        _REGISTRY[suffix] = RegisteredFormat(format_name, reader, in_folder_scans)


def unregister_reader(suffixes: Iterable[str]) -> None:
    """Forget the readers of ``suffixes`` (those without one are ignored)."""
    for suffix in suffixes:
        _REGISTRY.pop(str(suffix).lower(), None)


def format_for(path: Path) -> RegisteredFormat | None:
    """The registered format of ``path`` from its suffix, or None."""
    return _REGISTRY.get(path.suffix.lower())


def registered_suffixes() -> tuple[str, ...]:
    """Every suffix with a reader, in registration order."""
    return tuple(_REGISTRY)


def folder_suffixes() -> tuple[str, ...]:
    """The suffixes of files that a folder scan picks, in registration order."""
    return tuple(s for s, entry in _REGISTRY.items() if entry.in_folder_scans)


def format_names() -> dict[str, str]:
    """Format name by suffix, for every registered suffix."""
    return {s: entry.format_name for s, entry in _REGISTRY.items()}
