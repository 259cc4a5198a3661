"""Synthetic lifelong-behavior CTR data with a planted, known click probability.

Two generator versions, each deterministic under its seed:

* ``v2`` (default, ``tfrec.data.synthetic.v2``): a planted truth with one term per paper claim
  (semantic hierarchy and content/collaborative misalignment, interest evolution across groups,
  order inside a group, sessions, long-term intensity, recency, repeated items);
  ``tfrec.data.synthetic.report`` measures its oracle ablation and shortcut ceilings.
* ``v1`` (``tfrec.data.synthetic.v1``): the first generator, whose truth depends only on the
  target topic's own sub-history; kept so results measured on it stay reproducible.

Every example carries ``true_prob``, the probability its label was drawn from.
"""
from __future__ import annotations

from tfrec.data.synthetic import v1, v2
from tfrec.data.synthetic.common import SyntheticData, oracle_metrics_inputs

VERSIONS = {"v1": v1, "v2": v2}
DEFAULT_VERSION = "v2"
SIZES = ("small", "medium", "long")


def preset(size: str, version: str = DEFAULT_VERSION, **overrides):
    """The ``SyntheticConfig`` of a named size of a generator version.

    Args:
      size: ``"small"`` (tests), ``"medium"`` (demo default) or ``"long"`` (lifelong histories).
      version: ``"v2"`` (default) or ``"v1"``.
      **overrides: config fields to replace, e.g. ``seed=3``.
    """
    if version not in VERSIONS:
        raise ValueError(f"Unknown synthetic generator version. Expected one of {sorted(VERSIONS)}. "
                         f"Received: version={version!r}")
    return VERSIONS[version].SyntheticConfig.preset(size, **overrides)


def version_of(config) -> str:
    """``"v1"`` or ``"v2"``: the version whose ``SyntheticConfig`` this is."""
    for name, module in VERSIONS.items():
        if isinstance(config, module.SyntheticConfig):
            return name
    raise TypeError(f"Not a synthetic SyntheticConfig. Received: {type(config).__name__}")


def generate(config) -> SyntheticData:
    """Generate a data set with the generator of the config's version."""
    return VERSIONS[version_of(config)].generate(config)


__all__ = ["DEFAULT_VERSION", "SIZES", "SyntheticData", "VERSIONS", "generate", "oracle_metrics_inputs",
           "preset", "v1", "v2", "version_of"]
