"""Atomic file writing: a file appears complete under its name, or not at all.

The one place files are written atomically: every stage writes through :func:`atomic_path`,
:func:`write_atomic` or :func:`write_text_atomic`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nanofind.errors import NanofindInputError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; on success it replaces ``path``, on failure it is removed.

    Write the file under the yielded name and close it inside the ``with`` block.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to write a temporary file beside ``path``, then rename it to ``path``.

    An ``OSError`` (full disk, no permission) becomes a :class:`NanofindInputError` naming ``path``;
    nothing is left behind either way.
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            write(tmp)
    except OSError as exc:
        raise NanofindInputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return path
