from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
