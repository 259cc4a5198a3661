"""SIREN soft GSU (eq. 7): the numpy reference against a full sort, ScaNN against the reference."""
import subprocess
import sys

import numpy as np
import pytest

from tfrec.retrieval import ScannConfig, ScannGSU, UserHistoryIndex, exact_top_k, normalize


def reference_top_k(behaviors, queries, k, valid=None):
    """Full sort of every behavior on (score desc, position desc): a different route to eq. 7."""
    def unit(x):
        x = np.asarray(x, np.float32)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norm == 0, 1, norm)

    sim = unit(queries) @ unit(behaviors).T
    valid = np.ones(sim.shape, bool) if valid is None else np.broadcast_to(valid, sim.shape)
    positions = np.full((len(sim), k), -1, np.int64)
    scores = np.full((len(sim), k), -np.inf, np.float32)
    for row in range(len(sim)):
        keep = np.flatnonzero(valid[row])
        order = keep[np.lexsort((-keep, -sim[row, keep]))][:k]
        positions[row, :len(order)] = order
        scores[row, :len(order)] = sim[row, order]
    return positions, scores


def recall(found, truth):
    hits = [len(set(f[f >= 0]) & set(t[t >= 0])) / max(1, (t >= 0).sum()) for f, t in zip(found, truth)]
    return float(np.mean(hits))


def clustered(rng, n, dim, centers, noise=0.1):
    """n unit vectors around rows of ``centers`` (picked uniformly), Gaussian noise per dimension."""
    picks = rng.integers(0, len(centers), n)
    return normalize(centers[picks] + noise * rng.standard_normal((n, dim)))


def test_normalize_keeps_zero_rows():
    out = normalize([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32


def test_exact_top_k_golden():
    behaviors = [[1, 0], [0, 1], [2, 0], [-1, 0]]  # cosines with [1, 0]: 1, 0, 1, -1
    positions, scores = exact_top_k(behaviors, [[1.0, 0.0]], k=5)
    np.testing.assert_array_equal(positions, [[2, 0, 1, 3, -1]])  # tie 0 / 2 -> the more recent first
    np.testing.assert_array_equal(scores, [[1, 1, 0, -1, -np.inf]])
    assert positions.dtype == np.int64 and scores.dtype == np.float32
    positions, _ = exact_top_k(behaviors, [[1.0, 0.0]], k=3, valid=np.array([True, True, False, True]))
    np.testing.assert_array_equal(positions, [[0, 1, 3]])


def test_exact_top_k_matches_full_sort_on_random_data():
    rng = np.random.default_rng(0)
    behaviors, queries = rng.standard_normal((300, 16)), rng.standard_normal((20, 16))
    for k in (1, 7, 300, 310):
        got, ref = exact_top_k(behaviors, queries, k), reference_top_k(behaviors, queries, k)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-6, atol=1e-6)


def test_exact_top_k_breaks_ties_toward_recent_and_pads():
    rng = np.random.default_rng(1)
    # Scaled axis vectors normalise to exact one-hot rows, so their cosines tie exactly; zero rows tie at 0.
    axis = rng.integers(0, 4, 200)
    behaviors = np.eye(4)[axis] * rng.uniform(0.5, 3.0, (200, 1))
    behaviors[rng.random(200) < 0.1] = 0.0
    queries = rng.standard_normal((12, 4))
    valid = rng.random((12, 200)) < 0.8
    valid[3, :] = False  # no valid behavior
    valid[4, :] = False
    valid[4, [5, 17, 150]] = True  # fewer than k valid
    for k in (1, 30, 60, 250):
        got = exact_top_k(behaviors, queries, k, valid=valid)
        ref = reference_top_k(behaviors, queries, k, valid=valid)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
        assert np.all(got[0][3] == -1) and np.all(np.isneginf(got[1][3]))
        assert set(got[0][4][got[0][4] >= 0]) <= {5, 17, 150} and (got[0][4] >= 0).sum() == min(k, 3)


def assert_repeats_tie_toward_recent(items, positions, scores):
    """Returned occurrences of an item are its latest ones, adjacent, newest first, equal scores."""
    for row_positions, row_scores in zip(positions, scores):
        kept = row_positions >= 0
        for item in np.unique(items[row_positions[kept]]):
            where = np.flatnonzero(kept & (items[np.maximum(row_positions, 0)] == item))
            occurrences = np.flatnonzero(items == item)
            np.testing.assert_array_equal(row_positions[where], occurrences[::-1][:len(where)])
            assert np.all(np.diff(where) == 1) and len(set(row_scores[where])) == 1


@pytest.mark.parametrize("options", [None, {"exact_threshold": 0, "exhaustive": True}, {"exact_threshold": 0}])
def test_repeated_behaviors_tie_toward_recent(options):
    """BLAS gives identical columns 1-ulp-different scores; repeated items must still tie."""
    if options:
        pytest.importorskip("scann")
    rng = np.random.default_rng(6)
    table = rng.standard_normal((400, 24))
    items = rng.integers(0, 400, 4000)
    queries = np.concatenate([table[items[[5, 3000, 3999]]], rng.standard_normal((20, 24))])
    for k in (3, 40):
        if options is None:
            positions, scores = exact_top_k(table[items], queries, k)
        else:
            index = UserHistoryIndex(table[items], **options)
            assert index.distinct == len(np.unique(items)) and index.uses_scann
            positions, scores = index.search(queries, k)
        assert_repeats_tie_toward_recent(items, positions, scores)
        for row, item in enumerate(items[[5, 3000, 3999]]):  # the query's own item: cosine 1, newest first
            np.testing.assert_array_equal(positions[row, :3], np.flatnonzero(items == item)[::-1][:3])


def test_exact_top_k_empty_history():
    positions, scores = exact_top_k(np.zeros((0, 3)), np.ones((2, 3)), k=4)
    assert positions.shape == (2, 4) and np.all(positions == -1) and np.all(np.isneginf(scores))


def test_exhaustive_scann_equals_exact():
    pytest.importorskip("scann")
    rng = np.random.default_rng(2)
    behaviors, queries = rng.standard_normal((3000, 16)), rng.standard_normal((40, 16))
    index = UserHistoryIndex(behaviors, exhaustive=True)
    assert index.method == "scann_brute_force" and index.num_leaves is None
    positions, scores = index.search(queries, k=50)
    ref_positions, ref_scores = exact_top_k(behaviors, queries, k=50)
    assert recall(positions, ref_positions) == 1.0
    np.testing.assert_array_equal(positions, ref_positions)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)


@pytest.mark.parametrize("options, method, floor", [
    ({}, "scann_ah", 0.9),  # the default below 100k distinct behaviors
    ({"tree_threshold": 0}, "scann_tree_ah", 0.85),
])
def test_approximate_scann_recall_on_clustered_history(options, method, floor):
    pytest.importorskip("scann")
    rng = np.random.default_rng(3)
    centers = normalize(rng.standard_normal((200, 64)))
    own = centers[rng.choice(200, 4, replace=False)]
    history = np.concatenate([clustered(rng, 18_000, 64, own), clustered(rng, 2_000, 64, centers)])
    queries = np.concatenate([clustered(rng, 35, 64, own), clustered(rng, 15, 64, centers)])
    index = UserHistoryIndex(rng.permutation(history), **options)
    assert index.method == method
    if method == "scann_tree_ah":
        assert index.num_leaves == 141 and index.leaves_to_search == 71
    positions, scores = index.search(queries, k=50)
    ref_positions, _ = exact_top_k(index.vectors, queries, k=50)
    assert recall(positions, ref_positions) >= floor
    assert np.all(positions >= 0) and np.all(np.diff(scores, axis=1) <= 0)


@pytest.mark.parametrize("length", [0, 1, 5, 300])
@pytest.mark.parametrize("options", [{"exact_threshold": 10_000}, {"exact_threshold": 0},
                                     {"exact_threshold": 0, "tree_threshold": 0}])
def test_short_histories_and_k_above_length(length, options):
    if options["exact_threshold"] == 0 and length:
        pytest.importorskip("scann")
    rng = np.random.default_rng(length)
    behaviors, queries = rng.standard_normal((length, 8)), rng.standard_normal((6, 8))
    index = UserHistoryIndex(behaviors, **options)
    assert index.uses_scann == (options["exact_threshold"] == 0 and length > 0)
    assert index.method == {0: "exact", 1: "scann_brute_force", 5: "scann_brute_force"}.get(
        length if index.uses_scann else 0, "scann_tree_ah" if "tree_threshold" in options else "scann_ah")
    for k in (1, 3, length + 10):
        positions, scores = index.search(queries, k)
        ref_positions, ref_scores = exact_top_k(behaviors, queries, k)
        assert positions.shape == (6, k)
        if index.method in ("scann_ah", "scann_tree_ah") and k <= length:  # approximate: valid, distinct, true cosines
            assert np.all(positions >= 0) and all(len(set(row)) == k for row in positions)
            cosines = np.einsum("ckd,cd->ck", index.vectors[positions], normalize(queries))
            np.testing.assert_allclose(scores, cosines, atol=1e-6)
            assert np.all(np.diff(scores, axis=1) <= 0)
        else:  # exact, brute force, or every behavior asked for (a tree's missing rows are answered exactly)
            np.testing.assert_array_equal(positions, ref_positions)
            np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    assert index.search(np.zeros((0, 8)), 4)[0].shape == (0, 4)


def _offline_case(seed=4, length=3000, n_items=5000, examples=60):
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((n_items, 16))
    history = rng.integers(0, n_items, length)
    history[::97] = n_items + 5  # unknown ids: zero vectors
    timestamps = np.sort(rng.integers(0, 10_000, length))
    targets = rng.integers(0, n_items, examples)
    requests = np.concatenate([[0, timestamps[0], timestamps[10], timestamps[-1], 20_000],
                               rng.integers(0, 10_000, examples - 5)])
    return table, history, timestamps, targets, requests


def _exact_cut(gsu, history, timestamps, targets, requests, k):
    vectors = gsu.vectors(history)
    rows = []
    for target, request in zip(targets, requests):
        cut = int(np.sum(timestamps < request))
        rows.append(exact_top_k(vectors[:cut], gsu.vectors([target]), k))
    return np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])


@pytest.mark.parametrize("options", [{"exact_threshold": 10_000}, {"exhaustive": True}, {}])
def test_retrieve_before_cuts_at_request_time(options):
    if options.get("exact_threshold", 0) < 3000:
        pytest.importorskip("scann")
    table, history, timestamps, targets, requests = _offline_case()
    gsu = ScannGSU(table, **options)
    positions, scores = gsu.retrieve_before(history, timestamps, targets, requests, k=20)
    assert positions.shape == (len(targets), 20)
    seen = positions >= 0
    assert np.all(timestamps[positions[seen]] < np.broadcast_to(requests[:, None], positions.shape)[seen])
    cut = np.searchsorted(timestamps, requests, side="left")
    np.testing.assert_array_equal(seen.sum(1), np.minimum(20, cut))
    if options:  # exact search, or ScaNN brute force: the same as cutting first
        ref_positions, ref_scores = _exact_cut(gsu, history, timestamps, targets, requests, 20)
        np.testing.assert_array_equal(positions, ref_positions)
        np.testing.assert_allclose(scores, ref_scores, atol=1e-6)


def test_scann_gsu_retrieve_and_unknown_ids():
    table = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    gsu = ScannGSU(table)
    index = gsu.index([0, 7, 1, 2, -3])  # 7 and -3 are unknown: zero vectors, cosine 0
    np.testing.assert_array_equal(index.vectors[[1, 4]], 0)
    positions, scores = gsu.retrieve(index, [0, 99], k=3)
    np.testing.assert_array_equal(positions, [[0, 3, 4], [4, 3, 2]])  # unknown candidate: all 0, most recent
    np.testing.assert_allclose(scores, [[1, np.sqrt(0.5), 0], [0, 0, 0]], atol=1e-6)


def test_bad_inputs_name_the_argument():
    rng = np.random.default_rng(5)
    behaviors = rng.standard_normal((10, 4))
    with pytest.raises(ValueError, match="behavior_vectors"):
        exact_top_k(behaviors[0], behaviors, 3)
    with pytest.raises(ValueError, match="queries"):
        exact_top_k(behaviors, rng.standard_normal((2, 5)), 3)
    with pytest.raises(ValueError, match="k must be"):
        exact_top_k(behaviors, behaviors, 0)
    with pytest.raises(ValueError, match="valid"):
        exact_top_k(behaviors, behaviors, 3, valid=np.ones(9, bool))
    with pytest.raises(ValueError, match="behavior_vectors"):
        UserHistoryIndex(behaviors[None])
    with pytest.raises(ValueError, match="finite"):
        UserHistoryIndex(np.full((3, 4), np.nan))
    index = UserHistoryIndex(behaviors)
    with pytest.raises(ValueError, match="queries"):
        index.search(rng.standard_normal((2, 3)), 3)
    with pytest.raises(ValueError, match="k must be"):
        index.search(behaviors, 2.5)
    with pytest.raises(ValueError, match="leaves_to_search_fraction"):
        ScannConfig(leaves_to_search_fraction=0)
    with pytest.raises(TypeError):
        UserHistoryIndex(behaviors, leaves=3)
    gsu = ScannGSU(behaviors)
    with pytest.raises(ValueError, match="candidate_item_ids"):
        gsu.retrieve(gsu.index([1, 2]), [[1]], 2)
    with pytest.raises(ValueError, match="history_timestamps"):
        gsu.retrieve_before([1, 2, 3], [3, 2, 1], [1], [5], k=2)
    with pytest.raises(ValueError, match="request_timestamps"):
        gsu.retrieve_before([1, 2, 3], [1, 2, 3], [1], [5, 6], k=2)


def test_import_does_not_load_scann():
    code = "import sys, tfrec, tfrec.retrieval; assert 'scann' not in sys.modules and 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
