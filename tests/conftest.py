from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def recipes_dir() -> Path:
    return REPO / "examples" / "recipes"
