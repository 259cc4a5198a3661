"""Tests for tfrec.metrics.information against hand-computed values and a brute-force reference."""
import math

import numpy as np
import pytest

from tfrec.metrics import conditional_entropy, label_entropy, mutual_information

LN2 = math.log(2.0)
# H of a (3/4, 1/4) split: -(3/4 ln 3/4 + 1/4 ln 1/4).
H_3_1 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))  # 0.5623351446...


def _reference_mi(labels, clusters):
    """Eq. 14 literally: H(Y) - sum_g p(g) H(Y | G = g), with Python loops over the values."""
    labels, clusters = list(labels), list(clusters)
    n = len(labels)

    def entropy(values):
        counts = [values.count(v) for v in set(values)]
        return -sum(c / n_v * math.log(c / n_v) for n_v in [len(values)] for c in counts)

    h_y_given_g = sum(
        len(members) / n * entropy(members)
        for g in set(clusters)
        for members in [[y for y, c in zip(labels, clusters) if c == g]]
    )
    return entropy(labels) - h_y_given_g


def test_label_entropy_hand_computed():
    assert label_entropy([0, 1, 0, 1]) == pytest.approx(LN2)
    assert label_entropy([0, 1, 0, 1], bits=True) == pytest.approx(1.0)
    assert label_entropy([0, 0, 0, 1]) == pytest.approx(H_3_1)
    assert label_entropy([1, 1, 1]) == 0.0
    # Three labels, uniform: ln 3.
    assert label_entropy(["a", "b", "c"]) == pytest.approx(math.log(3.0))


def test_independent_grouping_has_zero_information():
    # Each cluster holds one 0 and one 1, like the whole set.
    assert mutual_information([0, 1, 0, 1], [0, 0, 1, 1]) == 0.0
    assert conditional_entropy([0, 1, 0, 1], [0, 0, 1, 1]) == pytest.approx(LN2)
    # One cluster for everything tells nothing.
    assert mutual_information([0, 0, 1, 0, 1], [7] * 5) == 0.0


def test_grouping_equal_to_the_label_recovers_the_label_entropy():
    labels = [0, 0, 0, 1]
    assert mutual_information(labels, labels) == pytest.approx(H_3_1)
    assert conditional_entropy(labels, labels) == 0.0
    # One cluster per row also determines the label.
    assert mutual_information(labels, [0, 1, 2, 3]) == pytest.approx(H_3_1)


def test_two_by_two_tables_hand_computed():
    # Symmetric table (g, y) counts: (0,0)=3, (0,1)=1, (1,0)=1, (1,1)=3; n = 8.
    #   H(Y) = ln 2; each cluster splits (3/4, 1/4), so H(Y|G) = H_3_1;
    #   I = ln 2 - H_3_1 = 0.1308120...  nats = 1 - 0.8112781 = 0.1887219 bits.
    clusters = [0, 0, 0, 0, 1, 1, 1, 1]
    labels = [0, 0, 0, 1, 0, 1, 1, 1]
    assert mutual_information(labels, clusters) == pytest.approx(0.1308120, abs=1e-7)
    assert mutual_information(labels, clusters, bits=True) == pytest.approx(0.1887219, abs=1e-7)
    assert conditional_entropy(labels, clusters) == pytest.approx(H_3_1)
    # Skewed table: (0,0)=4, (0,1)=0, (1,0)=2, (1,1)=2; n = 8.
    #   H(Y) = H_3_1 (6 zeros, 2 ones); cluster 0 is pure (H = 0), cluster 1 is (1/2, 1/2) (H = ln 2),
    #   H(Y|G) = 1/2 ln 2; I = H_3_1 - 1/2 ln 2 = 0.2157615... nats.
    labels = [0, 0, 0, 0, 0, 0, 1, 1]
    assert mutual_information(labels, clusters) == pytest.approx(0.2157615, abs=1e-7)
    assert conditional_entropy(labels, clusters) == pytest.approx(0.5 * LN2)
    assert mutual_information(labels, clusters) == pytest.approx(
        label_entropy(labels) - conditional_entropy(labels, clusters))


def test_matches_the_literal_eq_14_on_random_data():
    rng = np.random.default_rng(3)
    clusters = rng.integers(0, 12, size=500)
    labels = (rng.random(500) < 0.2 + 0.05 * (clusters % 4)).astype(np.int64)
    got = mutual_information(labels, clusters)
    assert got > 0
    assert got == pytest.approx(_reference_mi(labels, clusters), abs=1e-12)
    assert got == pytest.approx(label_entropy(labels) - conditional_entropy(labels, clusters), abs=1e-12)
    assert mutual_information(labels, clusters, bits=True) == pytest.approx(got / LN2)


def test_invariant_to_relabeling_clusters_and_symmetric():
    rng = np.random.default_rng(0)
    clusters = rng.integers(0, 8, size=300)
    labels = (rng.random(300) < 0.1 + 0.1 * (clusters % 3)).astype(np.int64)
    base = mutual_information(labels, clusters)
    permuted = rng.permutation(8)[clusters]  # a bijective renaming of the 8 ids
    sparse = np.array([1000, -5, 3, 42, 7, 99999, 0, 12])[clusters]  # non-contiguous, negative ids
    as_strings = np.array([f"c{c}" for c in clusters])
    for renamed in (permuted, sparse, as_strings):
        assert mutual_information(labels, renamed) == pytest.approx(base, abs=1e-12)
    # Row order does not matter either, and I(Y; G) = I(G; Y).
    order = rng.permutation(300)
    assert mutual_information(labels[order], clusters[order]) == pytest.approx(base, abs=1e-12)
    assert mutual_information(clusters, labels) == pytest.approx(base, abs=1e-12)


def test_label_dtypes_are_equivalent():
    clusters = [0, 0, 1, 1, 1]
    ints = [1, 0, 1, 1, 0]
    for labels in (np.array(ints, bool), np.array(ints, np.float32), np.array(ints, np.int8)):
        assert mutual_information(labels, clusters) == pytest.approx(mutual_information(ints, clusters))


def test_bounded_by_both_entropies():
    rng = np.random.default_rng(1)
    for _ in range(20):
        clusters = rng.integers(0, rng.integers(1, 30), size=200)
        labels = rng.integers(0, 2, size=200)
        mi = mutual_information(labels, clusters)
        assert 0.0 <= mi <= min(label_entropy(labels), label_entropy(clusters)) + 1e-12


@pytest.mark.parametrize(
    "labels, clusters, match",
    [
        ([0, 1, 1], [0, 1], "same length"),
        ([], [], "`labels` is empty"),
        ([0, 1], [], "`clusters` is empty"),
        ([[0, 1]], [[0, 1]], "`labels` must be 1-D"),
        ([0, 1], [[0], [1]], "`clusters` must be 1-D"),
        ([0, np.nan], [0, 1], "`labels` contains NaN"),
        ([0, 1], [0, np.inf], "`clusters` contains NaN or inf"),
        ([0.2, 0.9], [0, 1], "must be discrete"),
        ([0, 1], [0.5, 1.0], "quantize a continuous variable"),
        ([0, 1], np.array([None, None], dtype=object), "bools, integers or strings"),
    ],
)
def test_rejects_bad_input(labels, clusters, match):
    with pytest.raises(ValueError, match=match):
        mutual_information(labels, clusters)


def test_label_entropy_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        label_entropy([])
    with pytest.raises(ValueError, match="must be discrete"):
        label_entropy([0.5, 1.0])
