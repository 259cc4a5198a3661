"""The human checks of the clusters: t-SNE picture and example members; the cluster stage prints both."""
import argparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tfrec.grouping import kmeans
from tfrec.grouping.visualize import cluster_examples, format_cluster_examples, tsne_plot


def _blobs(k=4, per=30, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 10, (k, d))
    x = np.concatenate([c + rng.normal(0, 0.3, (per, d)) for c in centers]).astype(np.float32)
    return x, np.repeat(np.arange(k), per)


def test_tsne_plot_writes_a_png(tmp_path):
    x, labels = _blobs()
    path = tsne_plot(x, labels, tmp_path / "sub" / "tsne.png", max_points=80)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    with pytest.raises(ValueError, match="must agree"):
        tsne_plot(x, labels[:-1], tmp_path / "x.png")


def test_cluster_examples_are_members_and_seeded():
    _, labels = _blobs(k=3, per=10)
    names = [f"i{i}" for i in range(len(labels))]
    ex = cluster_examples(labels, names, per_cluster=4, seed=1)
    assert sorted(ex) == [0, 1, 2] and all(len(v) == 4 for v in ex.values())
    for c, members in ex.items():
        assert all(labels[int(m[1:])] == c for m in members)
    assert ex == cluster_examples(labels, names, per_cluster=4, seed=1)
    assert "cluster 2 (10 items): " in format_cluster_examples(ex, np.bincount(labels))
    with pytest.raises(ValueError, match="one label per item"):
        cluster_examples(labels, names[:3])


def test_progress_bar_does_not_change_kmeans():
    x, _ = _blobs()
    a, b = kmeans(x, 4, seed=3), kmeans(x, 4, seed=3, progress=True)
    np.testing.assert_array_equal(a.assignments, b.assignments)


def test_cluster_stage_prints_titles_and_writes_the_picture(tmp_path, capsys):
    from pipelines import cluster
    x, _ = _blobs(k=3, per=12, d=6)
    raw = tmp_path / "raw"
    raw.mkdir()
    np.savez(raw / "items.npz", item_id=np.arange(len(x)), embedding=x)
    pq.write_table(pa.table({"item_id": np.arange(len(x)), "title": [f"Movie {i}" for i in range(len(x))]}),
                   raw / "items_text.parquet")
    parser = argparse.ArgumentParser()
    cluster.add_arguments(parser)
    cluster.run(parser.parse_args(["--data", str(tmp_path), "--k", "3", "--plot-points", "36", "--examples", "2"]))
    out = capsys.readouterr().out
    assert "example members of the 3 largest clusters" in out and "Movie " in out
    assert (tmp_path / "clusters_tsne.png").exists() and (tmp_path / "groups.npz").exists()
