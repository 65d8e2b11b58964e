"""The per-file loop of the commands that read micrographs one by one (``columns``, ``match``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nanofind.errors import NanofindInputError


def each_file(inputs: list[str], out_dir: str | Path, description: str, work: Callable[[Path, Path], dict], *,
              on_file=None, quiet: bool = False) -> tuple[list[dict], list[str]]:
    """Run ``work(path, out_dir)`` on every micrograph of ``inputs`` (folders: the micrographs in them).

    ``out_dir`` is created first. A file whose work raises ``NanofindInputError`` is a failure (one
    line) and the batch goes on, unless it is the only file: then the error is raised.
    ``on_file(path, record, error)`` is called after each file. Returns the records and the failures.
    """
    from nanofind._progress import ProgressBar
    from nanofind.segment.batch import expand_inputs

    files = expand_inputs(inputs)
    if not files:
        raise NanofindInputError("no micrographs found in the inputs", " ".join(inputs))
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NanofindInputError(f"cannot create the folder ({exc.strerror or exc})", str(out)) from None
    records, failures = [], []
    with ProgressBar(description, len(files), enabled=not quiet) as bar:
        for path in files:
            try:
                record = work(path, out)
            except NanofindInputError as exc:
                if len(files) == 1:
                    raise
                failures.append(str(exc))
                record = None
            if on_file is not None:
                on_file(path, record, failures[-1] if record is None else None)
            if record is not None:
                records.append(record)
            bar.advance()
    return records, failures


def finished_record(record_path: Path, wanted: dict) -> dict | None:
    """The JSON record of a file done before with the same settings (``wanted`` keys), else None."""
    import json

    if not record_path.is_file():
        return None
    try:
        done = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    if all(done.get(k) == v for k, v in wanted.items()):
        return {**done, "resumed": True}
    return None
