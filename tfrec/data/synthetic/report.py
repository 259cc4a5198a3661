"""What the v2 data can test: the oracle, the oracle with each planted term removed, and the
information ceilings of the classic shortcuts (``tfrec synthetic --report``).

* **Oracle ablation.** Score every example with the planted probability recomputed without one
  term (``true_click_logit(drop=[term])``) against the labels drawn from the full truth. The AUC it
  loses is what that term carries: a model family that cannot see it cannot reach the oracle.
* **Shortcut ceilings.** The planted truth restricted to what a family of models reads, scored the
  same way (a proxy for the best such model, not a proof: the Bayes-optimal predictor given the
  restricted view may extrapolate a little):

  - ``last50``: the 50 most recent behaviors (DIN, DIEN on a short sequence);
  - ``sim_hard50``: the 50 most recent behaviors of the target's ``category`` feature (SIM hard);
  - ``similar50``: the 50 behaviors whose item vectors are most cosine-similar to the target's
    (SIM soft / MUSE / SIREN's soft GSU over the multimodal vectors);
  - ``unordered``: the whole history with its order destroyed: each request's past behaviors are
    shuffled (item, type, amount permuted over the same timestamps), the probability averaged over
    ``permutations`` draws (DIN-Full: attention pooling over a bag of behaviors).

Every figure is computed per user in numpy with ``[requests, behaviors]`` masks.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from tfrec.data.synthetic import v2
from tfrec.data.synthetic.common import SyntheticData
from tfrec.metrics import auc, gauc

SHORTCUTS: Dict[str, str] = {
    "last50": "last 50 behaviors (DIN)",
    "sim_hard50": "50 most recent same-category (SIM hard)",
    "similar50": "top-50 by vector cosine (SIM soft / MUSE)",
    "unordered": "whole history, order destroyed (DIN-Full)",
}
RETRIEVAL_K = 50


def _examples(data: SyntheticData, splits: Sequence[str]):
    rows = [e for split in splits for e in getattr(data, split)]
    user = np.fromiter((e["user_id"] for e in rows), np.int64, len(rows))
    return (user, np.fromiter((e["item_id"] for e in rows), np.int64, len(rows)),
            np.fromiter((e["request_timestamp"] for e in rows), np.int64, len(rows)),
            np.fromiter((e["label"] for e in rows), np.int64, len(rows)),
            np.fromiter((e["true_prob"] for e in rows), np.float64, len(rows)))


def _views(name: str, data: SyntheticData, hist: dict, target: np.ndarray, t_req: np.ndarray,
           rng: np.random.Generator, permutations: int) -> List[dict]:
    """Keyword arguments of ``true_click_logit`` for one shortcut (several for ``unordered``)."""
    item = hist["hist_item_id"]
    ts = hist["hist_timestamp"]
    n, m = len(ts), len(target)
    pos = np.arange(n)[None, :]
    k = np.searchsorted(ts, t_req, side="left")[:, None]  # behaviors before each request
    past = pos < k
    if name == "last50":
        return [dict(visible=past & (pos >= k - RETRIEVAL_K))]
    if name == "sim_hard50":
        category = data.items["category"]
        match = past & (category[item][None, :] == category[target][:, None])
        rank_from_end = match.sum(1, keepdims=True) - np.cumsum(match, 1)  # matches after j
        return [dict(visible=match & (rank_from_end < RETRIEVAL_K))]
    if name == "similar50":
        emb = data.items["embedding"].astype(np.float64)
        emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        score = np.where(past, emb[target] @ emb[item].T, -np.inf)
        keep = np.zeros((m, n), bool)
        if n > RETRIEVAL_K:
            top = np.argpartition(-score, RETRIEVAL_K - 1, axis=1)[:, :RETRIEVAL_K]
            np.put_along_axis(keep, top, True, axis=1)
        else:
            keep[:] = True
        return [dict(visible=keep & past)]
    if name == "unordered":
        views = []
        for _ in range(permutations):
            key = np.where(past, rng.random((m, n)), 2.0 + pos / max(n, 1))  # shuffle the past only
            perm = np.argsort(key, axis=1)
            views.append(dict(hist_item=item[perm], hist_behavior_type=hist["hist_behavior_type"][perm],
                              hist_amount=hist["hist_amount"].astype(np.float64)[perm]))
        return views
    raise ValueError(f"Unknown shortcut. Expected one of {sorted(SHORTCUTS)}. Received: {name!r}")


def _metrics(user, label, prob) -> Dict[str, float]:
    g = gauc(user, label, prob)
    return {"auc": float(auc(label, prob)), "gauc": float(g.value)}


def report(data: SyntheticData, splits: Sequence[str] = ("test",), terms: Sequence[str] = v2.TERMS,
           shortcuts: Sequence[str] = tuple(SHORTCUTS), permutations: int = 3, seed: int = 0) -> dict:
    """The oracle, its ablations and the shortcut ceilings of a v2 data set.

    Args:
      data: ``v2.generate(...)`` output.
      splits: the example splits to score (``("test",)``; ``("train", "test")`` for more examples).
      terms: planted terms to ablate (``v2.TERMS``).
      shortcuts: ceilings to compute (``SHORTCUTS``).
      permutations: shuffles averaged for ``unordered``.
      seed: seed of those shuffles.

    Returns:
      ``{"n_examples", "ctr", "oracle": {auc, gauc}, "ablation": {term: {auc, gauc, drop}},
      "ceilings": {name: {auc, gauc, gap}}}`` where ``drop`` / ``gap`` = oracle AUC minus that AUC.
    """
    if data.world is None:
        raise ValueError("report() needs v2 data (data.world is None: this is v1 data, whose truth has "
                         "no separate terms). Generate with version='v2'.")
    truth = data.config.truth
    rng = np.random.default_rng(seed)
    user, target, t_req, label, true_prob = _examples(data, splits)
    by_user = np.argsort(user, kind="stable")
    bounds = np.flatnonzero(np.r_[True, user[by_user][1:] != user[by_user][:-1], True])
    histories = {int(h["user_id"]): h for h in data.histories}
    ablated = {t: np.empty(len(user)) for t in terms}
    ceiling = {s: np.empty(len(user)) for s in shortcuts}
    check = np.empty(len(user))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        rows = by_user[lo:hi]
        hist = histories[int(user[rows[0]])]
        base = dict(hist_item=hist["hist_item_id"], hist_behavior_type=hist["hist_behavior_type"],
                    hist_timestamp=hist["hist_timestamp"], hist_amount=hist["hist_amount"].astype(np.float64),
                    target_item=target[rows], request_timestamp=t_req[rows], truth=truth)
        check[rows] = v2.sigmoid(v2.true_click_logit(data.world, **base))
        for t in terms:
            ablated[t][rows] = v2.sigmoid(v2.true_click_logit(data.world, **base, drop=[t]))
        for s in shortcuts:
            views = _views(s, data, hist, target[rows], t_req[rows], rng, permutations)
            ceiling[s][rows] = np.mean([v2.sigmoid(v2.true_click_logit(data.world, **{**base, **v}))
                                        for v in views], axis=0)
    if not np.allclose(check, true_prob, rtol=1e-5, atol=1e-6):
        raise AssertionError("the stored true_prob differs from the truth recomputed from the histories")
    oracle = _metrics(user, label, true_prob)
    out = {"n_examples": int(len(user)), "ctr": float(label.mean()), "oracle": oracle, "ablation": {},
           "ceilings": {}}
    for t in terms:
        m = _metrics(user, label, ablated[t])
        out["ablation"][t] = {**m, "drop": oracle["auc"] - m["auc"]}
    for s in shortcuts:
        m = _metrics(user, label, ceiling[s])
        out["ceilings"][s] = {**m, "gap": oracle["auc"] - m["auc"]}
    return out


def format_report(name: str, result: dict) -> str:
    """Markdown tables of ``report``'s result."""
    o = result["oracle"]
    lines = [f"### {name}: {result['n_examples']} examples, CTR {result['ctr']:.3f}, "
             f"oracle AUC {o['auc']:.4f} / GAUC {o['gauc']:.4f}", "",
             "| oracle without | AUC | GAUC | AUC drop |", "|---|---|---|---|"]
    for t, m in result["ablation"].items():
        lines.append(f"| {t} | {m['auc']:.4f} | {m['gauc']:.4f} | {m['drop']:+.4f} |")
    lines += ["", "| shortcut ceiling (truth restricted to) | AUC | GAUC | gap to oracle |", "|---|---|---|---|"]
    for s, m in result["ceilings"].items():
        lines.append(f"| {SHORTCUTS[s]} | {m['auc']:.4f} | {m['gauc']:.4f} | {m['gap']:+.4f} |")
    return "\n".join(lines)
