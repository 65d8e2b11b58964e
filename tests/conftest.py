import os
from pathlib import Path

import pytest

from nanofind._parallel import THREAD_ENV, threads_for

REPO = Path(__file__).resolve().parents[1]

# pytest-xdist runs its workers side by side: each gets its share of the CPUs (set before any test
# imports PyTorch or scikit-learn), or their OpenMP pools spin against each other and the network
# tests run four to five times slower than alone.
_XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
if _XDIST_WORKERS > 1:
    for _name in THREAD_ENV:
        os.environ.setdefault(_name, str(threads_for(_XDIST_WORKERS)))


@pytest.fixture
def recipes_dir() -> Path:
    return REPO / "examples" / "recipes"


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache_outside_home(tmp_path_factory):
    """ONNX exports made by tests go to a temporary cache, not the user's."""
    import os

    before = os.environ.get("NANOFIND_CACHE_DIR")
    os.environ["NANOFIND_CACHE_DIR"] = str(tmp_path_factory.mktemp("nanofind-cache"))
    yield
    if before is None:
        os.environ.pop("NANOFIND_CACHE_DIR", None)
    else:
        os.environ["NANOFIND_CACHE_DIR"] = before
