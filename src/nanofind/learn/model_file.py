"""Model files: safetensors weights plus a JSON card. Loading never unpickles anything.

A model directory holds ``model.safetensors`` and ``card.json``. The card
(:class:`nanofind.learn.card.ModelCard`) records what a user needs to trust and reuse the model:
its task and classes, architecture and options, input normalisation, the training pixel size and
range (Å), the decision threshold, a training-data summary and metrics.
"""

from __future__ import annotations

from pathlib import Path

from nanofind._files import atomic_path, write_text_atomic
from nanofind.errors import NanofindInputError
from nanofind.learn.card import CARD, ModelCard

WEIGHTS = "model.safetensors"
#: The shipped HRTEM model, used when none is named (``default`` or ``hrtem``).
DEFAULT_MODEL_DIR = Path(__file__).with_name("default_model")
#: The shipped low-magnification bright-field model (``lowmag``).
LOWMAG_MODEL_DIR = Path(__file__).with_name("lowmag_model")
#: Names of the shipped models (``--model auto`` chooses among them: :mod:`nanofind.segment.model_choice`).
SHIPPED_MODELS = {"hrtem": DEFAULT_MODEL_DIR, "lowmag": LOWMAG_MODEL_DIR}
__all__ = ["CARD", "DEFAULT_MODEL_DIR", "LOWMAG_MODEL_DIR", "SHIPPED_MODELS", "WEIGHTS", "load_model", "read_card",
           "resolve_model_dir", "save_model"]


def save_model(directory: str | Path, model, card: ModelCard) -> Path:
    """Write ``model``'s weights and ``card`` into ``directory`` (created if needed); returns it."""
    from safetensors.torch import save_file

    if not isinstance(card, ModelCard):
        raise TypeError(f"card must be a ModelCard, got {type(card).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"architecture": card.architecture})
    write_text_atomic(directory / CARD, card.to_json())
    return directory


def resolve_model_dir(name: str | Path | None) -> Path:
    """The directory of a model ``name``d by the user.

    ``None`` or ``"default"``: the shipped HRTEM model; a name of :data:`SHIPPED_MODELS`: that model;
    anything else: the path it names.
    """
    if name is None or str(name) == "default":
        return DEFAULT_MODEL_DIR
    return SHIPPED_MODELS.get(str(name), Path(name))


def read_card(directory: str | Path | None) -> ModelCard:
    """The card of a model directory (``None`` or ``"default"``: the shipped model), checked and in the current layout.

    Raises :class:`NanofindInputError` naming the card file and the field, in one line.
    """
    return ModelCard.read(resolve_model_dir(directory))


def load_model(directory: str | Path | None = None):
    """Build the card's architecture and load its weights; returns ``(model in eval mode, ModelCard)``.

    The network has the card's input channels and one output channel per entry of its ``classes``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from nanofind.learn.networks import build_network

    directory = resolve_model_dir(directory)
    card = read_card(directory)
    try:
        model = build_network(card.architecture, out_channels=card.output_channels, in_channels=card.input_channels,
                              **card.options)
    except (TypeError, ValueError) as exc:
        raise NanofindInputError(f"cannot build architecture {card.architecture!r}: {exc}",
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
        raise NanofindInputError(f"weights do not fit architecture {card.architecture!r}: {first}",
                                 str(path)) from None
    return model.eval(), card
