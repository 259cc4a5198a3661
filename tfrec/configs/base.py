"""What every config module shares: the time buckets, the field checks, ``TrainConfig`` and the dict
conversions (``tfrec.configs`` re-exports them)."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Tuple, Type, TypeVar

T = TypeVar("T")

# Bucket boundaries, in days, for the time since a behavior (before the request).
TIME_BUCKET_DAYS: Tuple[float, ...] = (
    1 / 24, 6 / 24, 1, 2, 4, 7, 14, 30, 60, 90, 180, 365, 730,
)


def check_positive(config, *names: str) -> None:
    """Raises naming the first of ``names`` whose value in ``config`` is below 1."""
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{type(config).__name__}.{name} must be >= 1. Received: {name}={getattr(config, name)}")


def check_two_stage(config) -> None:
    """The checks every search-based config shares: d, N >= 1, S >= 0, dropout in [0, 1)."""
    check_positive(config, "embedding_dim", "history_length")
    name = type(config).__name__
    if config.short_term_length < 0:
        raise ValueError(f"{name}.short_term_length must be >= 0. Received: {config.short_term_length}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"{name}.dropout must lie in [0, 1). Received: dropout={config.dropout}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training loop settings.

    Attributes:
      batch_size: examples per step.
      epochs: passes over the training data.
      learning_rate: Adam learning rate.
      seed: seed for weights and shuffling.
      steps_per_execution: train steps per call of the compiled train function (Keras
        ``steps_per_execution``): metrics are read, and under a distribution strategy reduced across
        the workers, once per call instead of every step.
    """

    batch_size: int = 256
    epochs: int = 3
    learning_rate: float = 2e-3
    seed: int = 0
    steps_per_execution: int = 1


def to_dict(config: Any) -> Dict[str, Any]:
    """Dataclass -> JSON-friendly dict (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def from_dict(cls: Type[T], d: Dict[str, Any]) -> T:
    """Dict -> dataclass, rejecting unknown keys with a clear message; lists become tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} field(s) {unknown}; known fields: {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
