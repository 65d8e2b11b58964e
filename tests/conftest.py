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

# Crop work stays in the test processes (and the commands they run): a clean-clone CI run stalled
# twice in an xdist worker that had used joblib's process pool. The pool itself is tested in a fresh
# interpreter with a time limit (tests/classify/test_classifier.py).
os.environ["NANOFIND_CROP_WORKERS"] = "1"


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


@pytest.fixture(scope="session")
def dask_cluster():
    """An in-process Dask cluster (the same client/submit path as a remote one, without spawning
    processes), one per test process.

    distributed waits only 10 s for its event-loop thread to start; on two busy cores beside the
    other xdist worker that wait has run out, so a start that fails that way is tried again.
    """
    from distributed import LocalCluster

    for attempt in range(3):
        try:
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
            break
        except (AssertionError, TimeoutError):
            if attempt == 2:
                raise
    with cluster:
        yield cluster
