"""Model files: safetensors weights plus a JSON card. Loading never unpickles anything.

A model directory holds ``model.safetensors`` and ``card.json``. The card records what a user
needs to trust and reuse the model: architecture and its options, input normalisation, the
training pixel size and range (Å), the decision threshold, a training-data summary and metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

from nanofind._files import atomic_path, write_text_atomic
from nanofind.errors import NanofindInputError

WEIGHTS = "model.safetensors"
CARD = "card.json"
#: The model shipped inside the package, used when none is named.
DEFAULT_MODEL_DIR = Path(__file__).with_name("default_model")
#: Card keys every model must have.
REQUIRED_CARD_KEYS = ("architecture", "options", "normalisation", "pixel_size_A", "threshold")


def save_model(directory: str | Path, model, card: dict) -> Path:
    """Write ``model``'s weights and ``card`` into ``directory`` (created if needed); returns it."""
    from safetensors.torch import save_file

    missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
    if missing:
        raise ValueError(f"model card lacks {missing}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"architecture": str(card["architecture"])})
    write_text_atomic(directory / CARD, json.dumps(card, indent=1, ensure_ascii=False))
    return directory


def resolve_model_dir(name: str | Path | None) -> Path:
    """``None`` or ``"default"`` → the shipped model; otherwise the directory given."""
    if name is None or str(name) == "default":
        return DEFAULT_MODEL_DIR
    return Path(name)


def read_card(directory: str | Path) -> dict:
    """The card of a model directory, checked for the required keys."""
    directory = resolve_model_dir(directory)
    path = directory / CARD
    if not path.is_file():
        raise NanofindInputError(f"not a nanofind model directory (no {CARD})", str(directory))
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NanofindInputError(f"unreadable model card ({exc})", str(path)) from None
    missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
    if missing:
        raise NanofindInputError(f"model card lacks {', '.join(missing)}", str(path))
    problem = _card_number_problem(card)
    if problem:
        raise NanofindInputError(f"model card: {problem}", str(path))
    return card


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _card_number_problem(card: dict) -> str | None:
    """What is wrong with the numbers inference reads from a card (threshold, pixel sizes in Å), or None."""
    threshold = card["threshold"]
    if not (_is_number(threshold) and 0 <= threshold <= 1):
        return f"threshold must be a number between 0 and 1, got {threshold!r}"
    pixel = card["pixel_size_A"]
    if pixel is not None and not (_is_number(pixel) and pixel > 0):
        return f"pixel_size_A must be a positive number of Å or null, got {pixel!r}"
    for key in ("pixel_size_range_A", "working_pixel_size_range_A"):
        value = card.get(key)
        if value is None:
            continue
        if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) and v > 0 for v in value)
                and value[0] <= value[1]):
            return f"{key} must be [smallest, largest] in Å or null, got {value!r}"
    return None


def load_model(directory: str | Path | None = None):
    """Build the card's architecture and load its weights; returns ``(model in eval mode, card)``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from nanofind.learn.networks import build_network

    directory = resolve_model_dir(directory)
    card = read_card(directory)
    try:
        model = build_network(card["architecture"], **card.get("options", {}))
    except (TypeError, ValueError) as exc:
        raise NanofindInputError(f"cannot build architecture {card['architecture']!r}: {exc}",
                                 str(directory / CARD)) from None
    path = directory / WEIGHTS
    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise NanofindInputError(f"cannot read weights ({exc})", str(path)) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise NanofindInputError(f"weights do not fit architecture {card['architecture']!r}: {first}",
                                 str(path)) from None
    return model.eval(), card
