"""Information-theoretic metrics of a discrete grouping against a label, from counts, in plain numpy.

* ``label_entropy``: H(Y) of the empirical label distribution.
* ``conditional_entropy``: H(Y|G) = sum_g p(g) H(Y | G = g).
* ``mutual_information``: I(Y; G) = H(Y) - H(Y|G) (SIREN, sec. 5.5.1, eq. 14). SIREN's
  representation-discriminability analysis (sec. 5.4, Fig. 4 left) takes G = the K-means cluster
  of each example's user-interest representation and Y = the click label.

Units: nats (natural log) by default, bits with ``bits=True`` (= nats / ln 2). The paper does not
state the unit of its MI values; ours are in nats unless the caller says otherwise.

Empirical (plug-in) estimates: with K groups, |Y| labels and N rows, ``mutual_information`` is
biased upwards by about (K - 1)(|Y| - 1) / (2 N) nats (Miller-Madow), so compare groupings of the
same K on the same rows.
"""
from __future__ import annotations

import math

import numpy as np

ArrayLike = np.ndarray | list | tuple


def _codes(name: str, values: ArrayLike) -> tuple[np.ndarray, int]:
    """Returns ``values`` as dense codes ``0..V-1`` (``[n]`` int64) and V, or raises ValueError.

    Accepts bool, integer, string values, and floats holding whole numbers (e.g. float32 0/1
    labels); a float with a fractional part means a continuous variable and is rejected.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D. Received: {name}.shape={array.shape}")
    if array.size == 0:
        raise ValueError(f"`{name}` is empty. Received: {name}.shape={array.shape}")
    kind = array.dtype.kind
    if kind == "f":
        if not np.isfinite(array).all():
            raise ValueError(f"`{name}` contains NaN or inf ({int((~np.isfinite(array)).sum())} of "
                             f"{array.size} values).")
        fractional = array != np.round(array)
        if fractional.any():
            raise ValueError(f"`{name}` must be discrete (whole numbers); quantize a continuous variable first "
                             f"(e.g. K-means). Received values such as {array[fractional][:5].tolist()}")
    elif kind not in "biuUS":
        raise ValueError(f"`{name}` must hold bools, integers or strings. Received: {name}.dtype={array.dtype}")
    uniques, codes = np.unique(array, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), len(uniques)


def _joint_counts(labels: ArrayLike, groups: ArrayLike) -> np.ndarray:
    """The contingency table ``[G, Y]`` (float64 counts) of ``groups`` against ``labels``."""
    y, n_y = _codes("labels", labels)
    g, n_g = _codes("clusters", groups)
    if len(y) != len(g):
        raise ValueError(f"Inputs must have the same length. Received: len(labels)={len(y)}, "
                         f"len(clusters)={len(g)}")
    return np.bincount(g * n_y + y, minlength=n_g * n_y).reshape(n_g, n_y).astype(np.float64)


def _entropy(counts: np.ndarray) -> float:
    """Entropy in nats of the distribution proportional to ``counts`` (zeros skipped)."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _unit(nats: float, bits: bool) -> float:
    return nats / math.log(2.0) if bits else nats


def label_entropy(labels: ArrayLike, bits: bool = False) -> float:
    """H(Y) = -sum_y p(y) log p(y) of the empirical label distribution.

    Args:
      labels: ``[n]`` discrete labels (bool, integers, strings, or whole-number floats).
      bits: bool, default False. Base-2 logarithm (bits) instead of natural (nats).

    Returns:
      H(Y) >= 0; 0 when a single label is present; log 2 nats (1 bit) for balanced binary labels.

    Raises:
      ValueError: if ``labels`` is not 1-D, is empty, contains NaN / inf or fractional values.
    """
    y, n_y = _codes("labels", labels)
    return _unit(_entropy(np.bincount(y, minlength=n_y).astype(np.float64)), bits)


def conditional_entropy(labels: ArrayLike, clusters: ArrayLike, bits: bool = False) -> float:
    """H(Y|G) = sum_g p(g) H(Y | G = g): the label uncertainty left once the group is known.

    Args:
      labels: ``[n]`` discrete labels Y.
      clusters: ``[n]`` discrete group of each row G (any ids: only equality matters).
      bits: bool, default False. Bits instead of nats.

    Returns:
      H(Y|G) in ``[0, H(Y)]``.

    Raises:
      ValueError: as ``mutual_information``.
    """
    table = _joint_counts(labels, clusters)  # [G, Y]
    n_g = table.sum(axis=1)
    h = sum(n * _entropy(row) for n, row in zip(n_g, table)) / n_g.sum()
    return _unit(float(h), bits)


def mutual_information(labels: ArrayLike, clusters: ArrayLike, bits: bool = False) -> float:
    """I(Y; G) = H(Y) - H(Y|G) (SIREN, eq. 14) of a discrete grouping G against a label Y.

    Computed from the contingency table as sum_{y,g} p(y,g) log(p(y,g) / (p(y) p(g))), the same
    quantity without the cancellation of the difference, clipped to ``[0, H(Y)]`` against
    rounding. It depends only on the partition: renaming the clusters leaves it unchanged, and it
    is symmetric in its two arguments.

    Args:
      labels: ``[n]`` discrete labels Y (e.g. 0/1 clicks, as bool, int or float).
      clusters: ``[n]`` discrete group of each row G (e.g. ``kmeans(...).assignments``).
      bits: bool, default False. Bits instead of nats.

    Returns:
      I(Y; G) in ``[0, min(H(Y), H(G))]``: 0 when G is independent of Y, H(Y) when G determines Y.

    Raises:
      ValueError: if an input is not 1-D, is empty, contains NaN / inf or fractional values, holds
        another dtype than bool / integer / string / float, or if the lengths differ.
    """
    table = _joint_counts(labels, clusters)  # [G, Y]
    n = table.sum()
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True)  # n_g n_y
    nonzero = table > 0
    mi = float((table[nonzero] / n * np.log(table[nonzero] * n / expected[nonzero])).sum())
    h_y = _entropy(table.sum(axis=0))
    return _unit(min(max(mi, 0.0), h_y), bits)
