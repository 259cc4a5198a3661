"""The DMGIN paper's human checks of the item clusters: a t-SNE picture and example members.

DMGIN validates its K-means groups twice: the load balance (``kmeans.balance_report``) and by
looking at them — a 2-D t-SNE of the item embeddings colored by cluster, and a few member items
per cluster for a human to judge whether a group means something.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np


def tsne_plot(embeddings: np.ndarray, assignments: np.ndarray, path: os.PathLike, max_points: int = 3000,
              perplexity: float = 30.0, seed: int = 0, title: str = "") -> Path:
    """Writes a PNG of a 2-D t-SNE of (a seeded sample of) the embeddings, colored by cluster.

    Args:
      embeddings: ``[N, D]`` item embeddings.
      assignments: ``[N]`` cluster index per item.
      path: the PNG to write (parent directories are created).
      max_points: t-SNE is O(N log N) but slow in practice; at most this many items are drawn,
        a uniform sample under ``seed``.
      perplexity: t-SNE perplexity (clipped below the sample size).
      seed: sample and t-SNE seed.
      title: figure title.

    Returns:
      The path written.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    embeddings = np.asarray(embeddings, np.float32)
    assignments = np.asarray(assignments)
    if embeddings.ndim != 2 or len(embeddings) != len(assignments):
        raise ValueError(f"embeddings [N, D] and assignments [N] must agree; got {embeddings.shape} and "
                         f"{assignments.shape}")
    if len(embeddings) < 5:
        raise ValueError(f"t-SNE needs at least 5 items, got {len(embeddings)}")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(embeddings), min(max_points, len(embeddings)), replace=False))
    xy = TSNE(n_components=2, perplexity=min(perplexity, (len(rows) - 1) / 3), init="pca", random_state=seed
              ).fit_transform(embeddings[rows])
    k = int(assignments.max()) + 1
    fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
    ax.scatter(xy[:, 0], xy[:, 1], c=assignments[rows], cmap="nipy_spectral" if k > 20 else "tab20", s=4,
               vmin=0, vmax=max(k - 1, 1))
    ax.set_title(title or f"t-SNE of {len(rows)} item embeddings, {k} K-means clusters")
    ax.set_xticks([])
    ax.set_yticks([])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def cluster_examples(assignments: np.ndarray, labels: Sequence[str], per_cluster: int = 5,
                     clusters: Optional[Sequence[int]] = None, seed: int = 0) -> Dict[int, List[str]]:
    """Up to ``per_cluster`` seeded random member labels for each cluster (all clusters by default)."""
    assignments = np.asarray(assignments)
    if len(labels) != len(assignments):
        raise ValueError(f"need one label per item: {len(labels)} labels for {len(assignments)} items")
    rng = np.random.default_rng(seed)
    out = {}
    for c in (sorted(set(assignments.tolist())) if clusters is None else clusters):
        members = np.flatnonzero(assignments == c)
        pick = np.sort(rng.choice(members, min(per_cluster, len(members)), replace=False)) if len(members) else []
        out[int(c)] = [str(labels[i]) for i in pick]
    return out


def format_cluster_examples(examples: Dict[int, List[str]], sizes: Optional[np.ndarray] = None) -> str:
    lines = []
    for c, members in examples.items():
        size = f" ({int(sizes[c])} items)" if sizes is not None else ""
        lines.append(f"cluster {c}{size}: " + " | ".join(members))
    return "\n".join(lines)
