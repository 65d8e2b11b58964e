"""Recipe values that are fixed or drawn from a distribution: their models, checks and draws.

A recipe value may be a plain value or one of

- ``{uniform: [low, high]}``
- ``{normal: {mean: m, std: s}}`` and ``{lognormal: {median: m, sigma: s}}``, with optional
  ``min`` / ``max`` clipping
- ``{choice: [a, b, c], weights: [0.5, 0.3, 0.2]}`` (weights optional).

Shared by the scene recipe (:mod:`nanofind.scene.recipe`) and the simulation recipe
(:mod:`nanofind.simulate.recipe`). The ``check_*`` functions are pydantic field checks: they take a
value, return it (possibly converted) or raise ``ValueError`` with the message the user sees.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class StrictModel(BaseModel):
    """Base of every recipe section: unknown keys and non-finite numbers are rejected."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Uniform(StrictModel):
    """``{uniform: [low, high]}``."""

    uniform: tuple[float, float]
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _order(self):
        if self.uniform[1] < self.uniform[0]:
            raise ValueError(f"uniform needs low <= high, got {list(self.uniform)}")
        return self


class _NormalParams(StrictModel):
    mean: float
    std: float = Field(ge=0)


class Normal(StrictModel):
    """``{normal: {mean, std}}``."""

    normal: _NormalParams
    min: float | None = None
    max: float | None = None


class _LogNormalParams(StrictModel):
    median: float = Field(gt=0)
    sigma: float = Field(ge=0)


class LogNormal(StrictModel):
    """``{lognormal: {median, sigma}}``: log of the value is normal."""

    lognormal: _LogNormalParams
    min: float | None = None
    max: float | None = None


class Choice(StrictModel):
    """``{choice: [...], weights: [...]}``."""

    choice: list[Any] = Field(min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _weights(self):
        if self.weights is not None:
            if len(self.weights) != len(self.choice):
                raise ValueError(f"weights has {len(self.weights)} entries for {len(self.choice)} choices")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("weights must be >= 0 with a positive sum")
        return self


#: A recipe number: fixed, or any distribution.
Number = float | Uniform | Normal | LogNormal | Choice
#: The distribution models, for ``isinstance`` tests.
DISTRIBUTION_TYPES = (Uniform, Normal, LogNormal, Choice)


def check_numeric(value: Any) -> Any:
    """Reject choices among non-numbers (or non-finite numbers) for a numeric field."""
    if isinstance(value, Choice):
        for item in value.choice:
            if isinstance(item, bool) or not isinstance(item, (int, float)) or not np.isfinite(item):
                raise ValueError(f"choices for a number must be finite numbers, got {item!r}")
    return value


def lower_bound(value: Any) -> float | None:
    """The smallest value ``value`` can draw, or None when it has no lower bound (or is not a number)."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Uniform):
        return value.min if value.min is not None else value.uniform[0]
    if isinstance(value, Choice):
        vals = [v for v in value.choice if isinstance(v, (int, float))]
        return min(vals) if vals else None
    if isinstance(value, (Normal, LogNormal)):
        return value.min if value.min is not None else (0.0 if isinstance(value, LogNormal) else None)
    return None


def check_positive(value: Any, unit: str, allow_zero: bool = False) -> Any:
    """Reject a value or distribution that can draw below zero (or zero); ``unit`` is shown in the message."""
    low = lower_bound(value)
    if isinstance(value, Normal) and value.min is None:
        raise ValueError("a normal distribution for this field needs a 'min' so it stays positive")
    if low is not None and (low < 0 or (low == 0 and not allow_zero)):
        raise ValueError(f"must be {'>=' if allow_zero else '>'} 0{unit}, got {low}")
    return value


def check_fraction(value: Any) -> Any:
    """Reject a value or distribution that can draw outside [0, 1]."""
    low = lower_bound(value)
    if low is not None and low < 0:
        raise ValueError(f"must be in [0, 1], got {low}")
    if isinstance(value, (int, float)) and value > 1:
        raise ValueError(f"must be in [0, 1], got {value}")
    if isinstance(value, Uniform) and value.uniform[1] > 1:
        raise ValueError(f"must be in [0, 1], got {value.uniform[1]}")
    return value


def as_choice(value: Any) -> Any:
    """Turn ``{choice: [...], weights: [...]}`` into a Choice; other values pass through."""
    if not isinstance(value, dict) or "choice" not in value:
        return value
    try:
        return Choice.model_validate(value)
    except ValidationError as err:
        raise ValueError(err.errors()[0]["msg"].removeprefix("Value error, ")) from None


def choice_options(value: Any) -> list:
    """Every value a Choice can draw, or ``[value]`` for a fixed value."""
    return value.choice if isinstance(value, Choice) else [value]


def checked_field(check, *fields: str, allow: tuple = ()):
    """A pydantic field validator that passes ``fields`` through ``check`` (values in ``allow`` pass as they are).

    Assign it in a model's body; ``check`` takes the value, returns it (possibly converted) or raises
    ``ValueError`` with the message the user sees.
    """
    def run(cls, value):
        return value if value in allow else check(value)

    return field_validator(*fields)(classmethod(run))


def draw(value: Any, rng: np.random.Generator) -> Any:
    """Draw a concrete value from a fixed value or a distribution."""
    if isinstance(value, Choice):
        p = None if value.weights is None else np.asarray(value.weights) / np.sum(value.weights)
        return draw(value.choice[int(rng.choice(len(value.choice), p=p))], rng)
    if isinstance(value, Uniform):
        x = float(rng.uniform(*value.uniform))
    elif isinstance(value, Normal):
        x = float(rng.normal(value.normal.mean, value.normal.std))
    elif isinstance(value, LogNormal):
        x = float(value.lognormal.median * np.exp(rng.normal(0.0, value.lognormal.sigma)))
    else:
        return value
    return float(np.clip(x, value.min if value.min is not None else -np.inf,
                         value.max if value.max is not None else np.inf))
