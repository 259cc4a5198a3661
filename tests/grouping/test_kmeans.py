"""Tests for tfrec.grouping.kmeans: planted-blob recovery, determinism, balance, group table."""
import importlib
import json
import math
import warnings

import numpy as np
import pytest

from tfrec.grouping import (
    GroupTable,
    balance_report,
    check_balance,
    format_balance_report,
    item_to_group_table,
    kmeans,
    load_group_table,
    save_group_table,
)
# The package re-exports the function `kmeans`, which hides the module of the same name.
kmeans_module = importlib.import_module("tfrec.grouping.kmeans")

BLOB_SIZES = (40, 90, 60, 120, 50, 75)


def _blobs(seed: int = 0, dim: int = 8):
    """Well-separated Gaussian blobs: centers ~50 apart, unit noise, unequal sizes."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 30.0, size=(len(BLOB_SIZES), dim))
    truth = np.repeat(np.arange(len(BLOB_SIZES)), BLOB_SIZES)
    x = centers[truth] + rng.normal(0.0, 1.0, size=(len(truth), dim))
    return x.astype(np.float32), truth


def _assert_same_partition(truth: np.ndarray, found: np.ndarray):
    """Each true blob maps to exactly one cluster and each cluster to exactly one blob."""
    pairs = set(zip(truth.tolist(), found.tolist()))
    assert len(pairs) == len(set(truth.tolist())) == len(set(found.tolist()))


def _blob_optimum(x: np.ndarray, truth: np.ndarray) -> float:
    """Inertia of the planted partition with blob means as centroids."""
    return float(sum(((x[truth == b] - x[truth == b].mean(0)) ** 2).sum() for b in set(truth)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lloyd_recovers_planted_blobs(seed):
    x, truth = _blobs(seed)
    result = kmeans(x, len(BLOB_SIZES), seed=seed)
    _assert_same_partition(truth, result.assignments)
    assert result.inertia == pytest.approx(_blob_optimum(x, truth), rel=1e-5)
    assert result.n_iter < 50  # converged before the cap
    assert result.centroids.shape == (len(BLOB_SIZES), 8) and result.centroids.dtype == np.float32
    assert result.assignments.shape == (len(truth),) and result.assignments.dtype == np.int32


@pytest.mark.parametrize("seed", [0, 1])
def test_minibatch_recovers_planted_blobs(seed):
    x, truth = _blobs(seed)
    result = kmeans(x, len(BLOB_SIZES), seed=seed, batch_size=32, n_iter=5)
    _assert_same_partition(truth, result.assignments)
    assert result.inertia == pytest.approx(_blob_optimum(x, truth), rel=1e-3)


@pytest.mark.parametrize("batch_size", [None, 64])
def test_same_seed_same_result(batch_size):
    x = np.random.default_rng(5).normal(size=(500, 6)).astype(np.float32)
    first = kmeans(x, 7, seed=11, batch_size=batch_size, n_iter=8)
    second = kmeans(x, 7, seed=11, batch_size=batch_size, n_iter=8)
    np.testing.assert_array_equal(first.centroids, second.centroids)
    np.testing.assert_array_equal(first.assignments, second.assignments)
    assert (first.inertia, first.n_iter) == (second.inertia, second.n_iter)


def test_assignments_are_nearest_centroids_and_chunking_changes_nothing(monkeypatch):
    x = np.random.default_rng(2).normal(size=(300, 5))  # float64 input
    result = kmeans(x, 9, seed=3, n_iter=10)
    dist = ((x[:, None, :] - result.centroids[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(result.assignments, dist.argmin(1))
    assert result.inertia == pytest.approx(dist.min(1).sum(), rel=1e-5)
    monkeypatch.setattr(kmeans_module, "_CHUNK_ELEMENTS", 20)  # chunks of 2 rows
    chunked = kmeans(x, 9, seed=3, n_iter=10)
    np.testing.assert_allclose(chunked.centroids, result.centroids, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(chunked.assignments, result.assignments)


def test_empty_cluster_reseeded_on_farthest_row():
    x = np.array([[0.0], [1.0], [10.0], [11.0]], dtype=np.float32)
    centroids = np.array([[0.5], [100.0]], dtype=np.float32)  # cluster 1 starts empty
    # Squared distances to centroid 0.5: 0.25, 0.25, 90.25, 110.25 -> reseed on row 11.0,
    # then Lloyd settles at the two pair means.
    kmeans_module._lloyd(x, centroids, n_iter=10, tol_scaled=0.0)
    np.testing.assert_allclose(np.sort(centroids[:, 0]), [0.5, 10.5])


def test_fewer_distinct_rows_than_k():
    x = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]], dtype=np.float32), 4, axis=0)
    result = kmeans(x, 5, seed=0)
    assert result.inertia == 0.0
    report = balance_report(result.assignments, 5)
    assert report["n_empty"] == 2 and sorted(report["sizes"]) == [0, 0, 4, 4, 4]


def test_memmap_input_minibatch(tmp_path):
    x, truth = _blobs(4)
    stored = np.lib.format.open_memmap(tmp_path / "emb.npy", mode="w+", dtype=np.float32, shape=x.shape)
    stored[:] = x
    result = kmeans(stored, len(BLOB_SIZES), seed=0, batch_size=64, n_iter=5)
    _assert_same_partition(truth, result.assignments)


@pytest.mark.parametrize(
    "embeddings, kwargs, match",
    [
        (np.zeros((3, 2)), {"k": 4}, r"Received: k=4"),
        (np.zeros((3, 2)), {"k": 0}, r"Received: k=0"),
        (np.zeros((3, 2)), {"k": True}, r"Received: k=True"),
        (np.zeros(3), {"k": 1}, r"2-D.*Received: embeddings.shape=\(3,\)"),
        (np.zeros((0, 2)), {"k": 1}, "empty"),
        (np.array([[0.0, 1.0], [np.nan, 1.0]]), {"k": 1}, "row 1"),
        (np.array([[0.0, np.inf]]), {"k": 1}, "finite"),
        (np.zeros((3, 2)), {"k": 1, "n_iter": 0}, r"Received: n_iter=0"),
        (np.zeros((3, 2)), {"k": 1, "batch_size": 0}, r"Received: batch_size=0"),
        (np.zeros((3, 2)), {"k": 1, "tol": -1.0}, r"Received: tol=-1.0"),
    ],
)
def test_kmeans_rejects_bad_input(embeddings, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kmeans(embeddings, **kwargs)


def test_balance_report_hand_computed():
    # Sizes [2, 2, 4]: mean 8/3; variance ((2 - 8/3)^2 * 2 + (4 - 8/3)^2) / 3 = (8/9 + 16/9) / 3
    # = 8/9, std = 2 sqrt(2) / 3, cv = std / mean = sqrt(2) / 4; max/min = 4 / 2 = 2.
    report = balance_report(np.array([2, 0, 2, 1, 2, 0, 1, 2]), 3)
    assert report["sizes"] == [2, 2, 4]
    assert (report["k"], report["n_items"], report["max"], report["min"]) == (3, 8, 4, 2)
    assert report["mean"] == pytest.approx(8 / 3)
    assert report["std"] == pytest.approx(2 * math.sqrt(2) / 3)
    assert report["cv"] == pytest.approx(math.sqrt(2) / 4)
    assert report["max_min_ratio"] == pytest.approx(2.0)
    assert report["n_empty"] == 0
    # Bins: 0, 1, 2-3, 4-7.
    assert [(h["min_size"], h["max_size"], h["n_clusters"]) for h in report["histogram"]] == [
        (0, 0, 0), (1, 1, 0), (2, 3, 2), (4, 7, 1)
    ]  # fmt: skip


def test_balance_report_with_empty_cluster():
    report = balance_report(np.array([0, 0, 1]), 3)
    assert report["sizes"] == [2, 1, 0]
    assert report["n_empty"] == 1 and report["min"] == 0
    assert math.isinf(report["max_min_ratio"])
    assert report["histogram"][0] == {"min_size": 0, "max_size": 0, "n_clusters": 1}


def test_balance_report_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, k=2\)"):
        balance_report(np.array([0, 2]), 2)


def test_check_balance_passes_warns_and_raises():
    report = balance_report(np.array([0, 0, 1, 1, 2, 2, 2, 2]), 3)  # cv 0.354, ratio 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_balance(report, max_cv=0.5, max_ratio=2.0) == []
    with pytest.raises(ValueError, match=r"cv=0\.3536 > max_cv=0\.3"):
        check_balance(report, max_cv=0.3, on_fail="raise")
    with pytest.warns(UserWarning, match=r"max_min_ratio=2 > max_ratio=1\.5"):
        failures = check_balance(report, max_ratio=1.5)
    assert len(failures) == 1
    empty = balance_report(np.array([0, 0, 1]), 3)
    with pytest.raises(ValueError, match=r"max_min_ratio=inf > max_ratio=100.*n_empty=1 > max_empty=0"):
        check_balance(empty, on_fail="raise")
    assert check_balance(empty, max_cv=None, max_ratio=None, max_empty=None) == []
    with pytest.raises(ValueError, match="on_fail"):
        check_balance(report, on_fail="ignore")


def test_format_balance_report():
    text = format_balance_report(balance_report(np.array([0, 0, 1, 1, 2, 2, 2, 2]), 3))
    assert "k=3, items=8" in text
    assert "cv 0.354" in text and "max/min 2.00" in text
    assert [line.split() for line in text.splitlines()[-2:]] == [["2-3", "2"], ["4-7", "1"]]


def test_item_to_group_table_reserves_zero():
    table = item_to_group_table(np.array([2, 0, 1, -1]))
    np.testing.assert_array_equal(table, [3, 1, 2, 0])
    assert table.dtype == np.int32
    with pytest.raises(ValueError, match="-1"):
        item_to_group_table(np.array([0, -2]))


def test_group_table_round_trip(tmp_path):
    x, truth = _blobs(0)
    result = kmeans(x, 6, seed=0)
    report = balance_report(result.assignments, 6)
    table = item_to_group_table(result.assignments)
    assert table.min() == 1 and table.max() == 6  # 0 stays reserved for unknown items
    npz_path, json_path = save_group_table(tmp_path / "groups.npz", table, result.centroids, report)
    assert json_path == tmp_path / "groups.balance.json"
    loaded = load_group_table(npz_path)
    assert isinstance(loaded, GroupTable)
    np.testing.assert_array_equal(loaded.table, table)
    np.testing.assert_array_equal(loaded.centroids, result.centroids)
    assert loaded.n_groups == 7
    assert loaded.report == report
    assert json.loads(json_path.read_text()) == report
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["groups.balance.json", "groups.npz"]


def test_group_table_round_trip_keeps_infinite_ratio(tmp_path):
    report = balance_report(np.array([0, 0]), 2)
    save_group_table(tmp_path / "g.npz", np.array([0, 1, 1]), np.zeros((2, 3)), report)
    assert math.isinf(load_group_table(tmp_path / "g.npz").report["max_min_ratio"])


def test_save_group_table_rejects_bad_input(tmp_path):
    report = balance_report(np.array([0, 1]), 2)
    with pytest.raises(ValueError, match=r"\.npz"):
        save_group_table(tmp_path / "groups.bin", np.array([1, 2]), np.zeros((2, 3)), report)
    with pytest.raises(ValueError, match=r"\[0, k=2\]"):
        save_group_table(tmp_path / "groups.npz", np.array([1, 3]), np.zeros((2, 3)), report)
    with pytest.raises(ValueError, match="k=2"):
        save_group_table(tmp_path / "groups.npz", np.array([1, 2, 3]), np.zeros((3, 3)), report)
