"""Tests for tfrec.grouping.choose_k: the silhouette sweep that picks the cluster stage's default k."""
import json
import math

import numpy as np
import pytest

from tfrec.grouping import KSelection, choose_k, format_k_table, k_grid, load_group_table, silhouette_score


def _blobs(n_blobs=12, per=50, dim=8, seed=0):
    """Planted, well-separated Gaussian blobs: centers ~N(0, 10^2) per dim, N(0, 0.5^2) noise."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 10.0, (n_blobs, dim))
    truth = np.repeat(np.arange(n_blobs), per)
    return (centers[truth] + rng.normal(0.0, 0.5, (len(truth), dim))).astype(np.float32), truth


def _brute_silhouette(x, labels):
    """The textbook definition, point by point (the reference for the vectorised version)."""
    x = np.asarray(x, dtype=np.float64)
    s = []
    for i in range(len(x)):
        d = np.linalg.norm(x - x[i], axis=1)
        own = labels == labels[i]
        if own.sum() == 1:
            s.append(0.0)
            continue
        a = d[own].sum() / (own.sum() - 1)
        b = min(d[labels == c].mean() for c in set(labels.tolist()) if c != labels[i])
        s.append((b - a) / max(a, b))
    return float(np.mean(s))


def test_silhouette_golden_1d():
    # Points 0, 2 | 6, 7, 8 (1-D), by hand:
    #   0: a = 2,                 b = (6 + 7 + 8) / 3 = 7,  s = 5/7
    #   2: a = 2,                 b = (4 + 5 + 6) / 3 = 5,  s = 3/5
    #   6: a = (1 + 2) / 2 = 1.5, b = (6 + 4) / 2 = 5,      s = 3.5/5 = 7/10
    #   7: a = (1 + 1) / 2 = 1,   b = (7 + 5) / 2 = 6,      s = 5/6
    #   8: a = (2 + 1) / 2 = 1.5, b = (8 + 6) / 2 = 7,      s = 5.5/7 = 11/14
    # mean = (150 + 126 + 147 + 175 + 165) / 210 / 5 = 763 / 1050 = 109/150
    x = np.array([[0.0], [2.0], [6.0], [7.0], [8.0]])
    assert silhouette_score(x, np.array([0, 0, 1, 1, 1])) == pytest.approx(109 / 150, abs=1e-12)
    # Label values need not be 0..C-1.
    assert silhouette_score(x, np.array([9, 9, 4, 4, 4])) == pytest.approx(109 / 150, abs=1e-12)
    # A singleton cluster {20} scores 0 and is farther than the other cluster for everyone
    # (8 -> 20 is 12 > 7), so the five scores above stay: mean = (763 / 210) / 6 = 109/180.
    x6 = np.array([[0.0], [2.0], [6.0], [7.0], [8.0], [20.0]])
    assert silhouette_score(x6, np.array([0, 0, 1, 1, 1, 2])) == pytest.approx(109 / 180, abs=1e-12)
    assert math.isnan(silhouette_score(x, np.zeros(5, dtype=int)))
    with pytest.raises(ValueError, match="labels"):
        silhouette_score(x, np.array([0, 1]))


def test_silhouette_matches_the_definition_on_random_data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5))
    labels = rng.integers(0, 6, 40)
    labels[7] = 11  # a singleton
    assert silhouette_score(x, labels) == pytest.approx(_brute_silhouette(x, labels), abs=1e-9)


def test_k_grid_is_geometric_sorted_and_bounded():
    grid = k_grid(20000)
    assert grid[0] == 8 and grid[-1] == 256  # default k_max = min(256, n_items // 10)
    assert grid == sorted(set(grid)) and all(isinstance(k, int) for k in grid)
    assert all(1.0 < b / a <= 1.25 + 0.1 for a, b in zip(grid, grid[1:]))
    assert k_grid(600) == [8, 10, 12, 16, 20, 24, 31, 38, 48, 60]
    assert k_grid(50) == [8]  # n_items // 10 = 5 is raised to k_min
    assert k_grid(9, k_min=8) == [8]
    assert k_grid(100, k_min=2, k_max=5, ratio=2) == [2, 4, 5]
    small = k_grid(1000, k_min=2, k_max=6, ratio=1.1)  # rounding collisions are merged
    assert small == sorted(set(small)) and small[0] == 2 and small[-1] == 6


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_items=1), "n_items"),
    (dict(n_items=100.0), "n_items"),
    (dict(n_items=100, k_min=1), "k_min"),
    (dict(n_items=5, k_min=8), "k_min"),
    (dict(n_items=100, k_max=4), "k_max"),
    (dict(n_items=100, k_max=101), "k_max"),
    (dict(n_items=100, k_max=True), "k_max"),
    (dict(n_items=100, ratio=1.0), "ratio"),
    (dict(n_items=100, ratio=float("inf")), "ratio"),
    (dict(n_items=100, ratio="2"), "ratio"),
])
def test_k_grid_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        k_grid(**kwargs)


def test_choose_k_finds_planted_blobs():
    x, _ = _blobs()
    grid = k_grid(len(x))
    assert 12 in grid
    selection = choose_k(x)
    assert isinstance(selection, KSelection) and selection.k == 12
    assert [row.k for row in selection.table] == grid
    best = max(selection.table, key=lambda row: row.silhouette)
    assert best.k == 12 and best.silhouette > 0.8 and best.balanced


def test_choose_k_picks_the_finer_level_of_a_hierarchy():
    # 4 parents ~N(0, 10^2) per dim, 4 children each at parent + N(0, 3^2), items at child +
    # N(0, 0.2^2), 8-D. At k=16 (the children) a point's a is the item noise (~0.2 * sqrt(2 * 8)
    # ~ 0.8) and b the distance to a sibling child (~3 * sqrt(2 * 8) ~ 12, the nearest one a few
    # units less): s ~ 0.9. At k=4 (the parents) a is mostly the distance between sibling
    # children (~12 for 3 in 4 pairs, so ~9) while b is the distance between parents
    # (~10 * sqrt(2 * 8) ~ 40): s ~ 0.75. Intermediate k merge some siblings (their points get
    # the k=4 kind of a), and k > 16 split tight children (a ~ b for the split points), so 16
    # is the maximum.
    rng = np.random.default_rng(1)
    parents = rng.normal(0.0, 10.0, (4, 8))
    children = (parents[:, None, :] + rng.normal(0.0, 3.0, (4, 4, 8))).reshape(16, 8)
    truth = np.repeat(np.arange(16), 50)
    x = (children[truth] + rng.normal(0.0, 0.2, (len(truth), 8))).astype(np.float32)
    selection = choose_k(x, grid=[4, 8, 12, 16, 20, 24, 32])
    assert selection.k == 16
    scores = {row.k: row.silhouette for row in selection.table}
    assert scores[16] > scores[4] > 0.5


def test_choose_k_is_deterministic_under_the_seed_and_uses_the_sample():
    x, _ = _blobs(n_blobs=6, per=40, seed=2)
    a = choose_k(x, grid=[4, 6, 8], seed=5, sample=100)
    b = choose_k(x, grid=[8, 4, 6, 6], seed=5, sample=100)  # order and repeats do not matter
    assert a == b and [row.k for row in a.table] == [4, 6, 8] and a.k == 6
    # The sampled silhouette estimates the full one.
    full = choose_k(x, grid=[4, 6, 8], seed=5, sample=len(x))
    assert all(abs(r.silhouette - f.silhouette) < 0.05 for r, f in zip(a.table, full.table))


def test_choose_k_prefers_balanced_clusterings_and_falls_back():
    # Blobs of 40, 40 and 80 points (noise 0.5, 8-D): the two small ones 15 apart, the big one
    # ~30 from both. k=3 (the planted blobs) has the best silhouette but sizes 40/40/80
    # (max/min 2); k=2 merges the small blobs into 80/80 (max/min 1) at a lower silhouette.
    rng = np.random.default_rng(4)
    direction = rng.normal(size=(2, 8))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    centers = np.stack([np.zeros(8), 15.0 * direction[0], 7.5 * direction[0] + 30.0 * direction[1]])
    truth = np.repeat(np.arange(3), [40, 40, 80])
    x = (centers[truth] + rng.normal(0.0, 0.5, (len(truth), 8))).astype(np.float32)
    grid = [2, 3, 4, 5]
    free = choose_k(x, grid=grid)
    assert free.k == 3 and free.table[1].balanced
    strict = choose_k(x, grid=grid, max_ratio=1.5)
    assert strict.k == 2 and strict.table[0].balanced and not strict.table[1].balanced
    assert strict.table[0].silhouette < strict.table[1].silhouette
    assert [row.balanced for row in strict.table] == [
        row.cv <= 1.0 and row.max_min_ratio <= 1.5 for row in strict.table]
    # None balanced: the best silhouette overall, said so in the table.
    none = choose_k(x, grid=grid, max_cv=-1.0)
    assert none.k == 3 and not any(row.balanced for row in none.table)
    assert "no k passed the balance check" in format_k_table(none)
    assert "no k passed" not in format_k_table(strict)


def test_format_k_table_marks_the_choice():
    x, _ = _blobs(n_blobs=4, per=30, seed=1)
    selection = choose_k(x, grid=[2, 4, 6])
    text = format_k_table(selection)
    lines = text.splitlines()
    assert "chose k=4" in lines[0] and "silhouette" in lines[1] and len(lines) == 5
    marked = [line for line in lines if "<- chosen" in line]
    assert len(marked) == 1 and marked[0].split()[0] == "4"


@pytest.mark.parametrize("kwargs, name", [
    (dict(grid=[]), "grid"),
    (dict(grid=[1, 4]), "grid"),
    (dict(grid=[4, 10_000]), "grid"),
    (dict(grid=[4.0]), "grid"),
    (dict(sample=1), "sample"),
    (dict(seed=-1), "seed"),
    (dict(n_iter=0), "n_iter"),
])
def test_choose_k_rejects_bad_arguments(kwargs, name):
    x, _ = _blobs(n_blobs=3, per=10)
    with pytest.raises(ValueError, match=f"`{name}`"):
        choose_k(x, **kwargs)


def test_cluster_stage_default_k_is_the_silhouette_choice(tmp_path, capsys):
    from pipelines import cluster
    from pipelines.common import stage_args

    x, _ = _blobs(n_blobs=12, per=20, seed=3)
    raw = tmp_path / "raw"
    raw.mkdir()
    np.savez(raw / "items.npz", item_id=np.arange(len(x)), embedding=x)
    # The generator's truth, if present, must not be read.
    (raw / "dataset.json").write_text(json.dumps({"n_items": len(x), "n_topics": 5}))
    cluster.run(stage_args(cluster, ["--data", tmp_path, "--no-plot", "--examples", "0"]))
    out = capsys.readouterr().out
    expected = choose_k(x, seed=0)
    assert expected.k == 12
    assert load_group_table(tmp_path / "groups.npz").n_groups == expected.k + 1
    assert format_k_table(expected) in out
    # --k-grid overrides the grid; --k skips the sweep.
    cluster.run(stage_args(cluster, ["--data", tmp_path, "--no-plot", "--examples", "0", "--k-grid", "5,9"]))
    assert "chose k=" in capsys.readouterr().out
    assert load_group_table(tmp_path / "groups.npz").n_groups - 1 in (5, 9)
    cluster.run(stage_args(cluster, ["--data", tmp_path, "--no-plot", "--examples", "0", "--k", "7"]))
    assert "silhouette" not in capsys.readouterr().out
    assert load_group_table(tmp_path / "groups.npz").n_groups == 8
    with pytest.raises(SystemExit):
        stage_args(cluster, ["--data", tmp_path, "--k-grid", "8,x"])
