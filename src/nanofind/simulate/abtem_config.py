"""The abTEM settings nanofind computes with, applied only while nanofind calls abTEM.

abTEM keeps its settings in one process-wide configuration; a user's own abTEM work in the same
process must not find it changed, so nanofind sets its values inside a context and abTEM's
``config.set`` restores the previous ones on leaving it. Because that configuration is shared by
every thread, the context also holds a process-wide lock: two threads of one process (an
in-process Dask cluster) would otherwise restore the user's settings under each other's running
simulation, which then computes with abTEM's defaults (another FFT, other numbers).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Eager, single-threaded, deterministic abTEM: numpy FFT on the CPU, single precision, no progress bars.
ABTEM_CONFIG = {"dask.lazy": False, "diagnostics.progress_bar": False, "fft": "numpy", "device": "cpu",
                "precision": "float32"}
#: Held while nanofind's settings are in force (re-entrant: a simulation calls abTEM in nested steps).
_CONFIG_LOCK = threading.RLock()


@contextmanager
def abtem_config() -> Iterator[None]:
    """Run the block with :data:`ABTEM_CONFIG`; abTEM's previous settings are back afterwards."""
    import abtem

    with _CONFIG_LOCK, abtem.config.set(ABTEM_CONFIG):
        yield
