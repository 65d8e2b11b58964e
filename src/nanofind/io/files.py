"""Opening a micrograph file: access checks, its first bytes, format signatures, and how a bad file is named.

Readers receive a file that exists, is a regular file, is readable and is not empty, with its
first :data:`HEAD_BYTES` bytes. Their refusals use :func:`not_valid` (with a hint when the file is
text) and :func:`describe_exception` (a library's exception on one short line, the file's
directory left out).
"""

from __future__ import annotations

import logging
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np

from nanofind.errors import NanofindInputError

#: Bytes read from the start of every file before its reader runs (the size of an MRC header).
HEAD_BYTES = 1024
#: First bytes of the formats that have a signature, by format name.
SIGNATURES = {"PNG": (b"\x89PNG\r\n\x1a\n",), "JPEG": (b"\xff\xd8\xff",),
              "TIFF": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), "EMD": (b"\x89HDF\r\n\x1a\n",),
              "SER": (b"II\x97\x01",)}


def file_size_bytes(path: Path) -> int:
    """Size of ``path`` in bytes once it is known to be a regular file (else the refusal names why)."""
    where = str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise NanofindInputError("no such file", where) from None
    except PermissionError:
        raise NanofindInputError("permission denied", where) from None
    except OSError as exc:
        raise NanofindInputError(f"cannot access ({exc.strerror or exc})", where) from None
    if stat.S_ISDIR(st.st_mode):
        raise NanofindInputError("is a directory, not a micrograph file", where)
    if not stat.S_ISREG(st.st_mode):
        raise NanofindInputError("not a regular file", where)
    return st.st_size


def read_head(path: Path, *, size_bytes: int) -> bytes:
    """The first :data:`HEAD_BYTES` bytes of ``path``; refuses an unreadable or empty file."""
    where = str(path)
    try:
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
    except PermissionError:
        raise NanofindInputError("permission denied", where) from None
    except OSError as exc:
        raise NanofindInputError(f"cannot open ({exc.strerror or exc})", where) from None
    if size_bytes == 0 or not head:
        raise NanofindInputError("empty file (0 bytes)", where)
    return head


def not_valid(path: Path, format_name: str, why: str, head: bytes = b"") -> NanofindInputError:
    """The error for a file that is not a valid ``format_name`` file; says so when ``head`` is text."""
    if head and looks_like_text(head):
        why += "; it looks like a text file"
    return NanofindInputError(f"not a valid {format_name} file ({why})", str(path))


def looks_like_text(head: bytes) -> bool:
    """True when the first 512 bytes are printable UTF-8 (notes saved under an image's name)."""
    try:
        text = head[:512].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def check_signature(path: Path, format_name: str, head: bytes) -> None:
    """Refuse a file that does not start with the signature of ``format_name`` (a key of :data:`SIGNATURES`)."""
    if head.startswith(SIGNATURES[format_name]):
        return
    for other, signatures in SIGNATURES.items():
        if other != format_name and head.startswith(signatures):
            raise not_valid(path, format_name, f"it is a {other} file with a {path.suffix} name")
    raise not_valid(path, format_name, f"it does not start with the {format_name} signature", head)


def describe_exception(exc: BaseException, path: Path) -> str:
    """``Type: message`` of a library's exception, on one line of at most 200 characters, naming the file only."""
    message = " ".join(str(exc).split()).replace(str(path), path.name)
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


@contextmanager
def quiet() -> Iterator[None]:
    """Silence library warnings and the readers' logs while reading (problems are raised instead)."""
    with suppress(ImportError):  # RosettaSciIO sets its log level when first imported: before saving it
        import rsciio  # noqa: F401
    loggers = [logging.getLogger(name) for name in ("rsciio", "tifffile")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
