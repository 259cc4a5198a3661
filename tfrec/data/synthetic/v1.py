"""Synthetic data **v1** (kept so results measured on it stay reproducible; `v2` is the default).

Synthetic lifelong-behavior CTR data with a planted, known click probability.

Every example carries ``true_prob``, the probability its label was drawn from, so the oracle
AUC/GAUC (scoring with ``true_prob``) is the ceiling every model is measured against. Pure numpy;
``generate(config)`` is deterministic under ``config.seed``.

The spec of the data
--------------------
**Items.** ``n_items`` items, each in one latent *topic* (``items["topic"]``, balanced over
``n_topics``). An item's "multimodal" embedding is its topic centroid plus isotropic noise; the
centroids are far apart compared with the noise, so K-means with ``k = n_topics`` over
``items["embedding"]`` recovers the topics (the DMGIN grouping stage). Within a topic, item
popularity is Zipf-like. Side features for the schema: ``category`` groups
``topics_per_category`` (shuffled) topics, so it narrows the topic down without naming it; ``brand``
is one of ``brands_per_topic`` brands of the item's topic, or with probability ``brand_noise`` any
brand. Neither enters the planted click probability except through the topic.

**Users and behaviors.** Each user has a few preferred topics (``min_user_topics`` to
``max_user_topics``) and a history of ``min_history_length`` to ``max_history_length`` behaviors
(log-uniform) whose timestamps are uniform over the whole span, so histories keep growing through
the request windows. The span is cut into consecutive, slightly overlapping *phases*, one preferred
topic each, in random order: a behavior goes, with probability ``noise_topic_prob``, to a random
non-preferred topic; with probability ``revisit_prob`` to any preferred topic still alive (an
occasional revisit of an old interest); otherwise to a topic whose phase is active. So topics the
user engaged with heavily long ago carry a large weighted count but appear rarely, or never, in the
most recent 50 behaviors: a short-sequence model cannot see them.
Within a preferred topic, a behavior hits one of the user's few favourite items of that topic with
probability ``favorite_prob`` (items are revisited with varying behavior types), else a
popularity-weighted item of the topic. Types follow a per-(user, topic) intensity ``s ~ U(0, 1)``
(``s = 0`` in non-preferred topics): high-intensity topics get more favorite/cart/order behaviors.
Durations (seconds) are log-normal with a per-type median; ``hist_amount`` is ``> 0`` only for
``"order"`` (price x quantity). Besides sporadic negatives (``negative_prob``), a preferred topic
whose phase ends before the span's end is, with probability ``late_negative_prob``, closed by a
*late negative*: its last behavior becomes ``"negative"`` and the user never returns to it.

**Examples.** Per user, ``train_examples_per_user`` requests uniform in
``[train_start_fraction, test_cutoff_fraction)`` of the span and ``test_examples_per_user`` in
``[test_cutoff_fraction, 1)`` (a time split: every train request precedes every test request).
The target topic is, with probability ``target_own_topic_prob``, one of the user's preferred topics
(current, long-ago or closed by a late negative), else a uniformly random topic; the target item is
a popularity-weighted item of that topic. ``label ~ Bernoulli(true_prob)``.

**The planted click probability** (``true_click_logit``). For a request at time ``t`` on an item of
topic ``c``, using only the user's behaviors ``j`` with ``t_j < t`` and ``topic(item_j) = c``:

.. code-block:: text

    W_c  = sum_j  w[type_j] + a * [type_j = order] * log1p(amount_j)     (interest intensity)
    N_c  = 1 if the most recent such behavior is "negative" else 0        (order inside the group)
    R_c  = exp(-(t - max_j t_j) / (tau * 86400)), 0 if there is none      (recency of the group)
    logit = bias + (1 - N_c) * (alpha * log1p(W_c) + gamma * R_c) - beta * N_c
    true_prob = sigmoid(logit)

with ``w = (view 0.5, click 1, favorite 2, cart 2, order 3, negative 0)`` and the other constants
in ``PlantedTruth``. Term 1 (``log1p(W_c)``) is long-term, saturating interest over the *whole*
history; term 2 cancels it after a late negative; term 3 rewards groups engaged with recently.

Measured with seed 0 on the test split (oracle = ``true_prob``; "last 50" / "whole" = a linear fit
on the target topic's count among the last 50 / all behaviors before the request):

======  =====  ==========  ===========  =======  =====  ===========
preset  CTR    oracle AUC  oracle GAUC  last 50  whole  generation
======  =====  ==========  ===========  =======  =====  ===========
small   0.16   0.80        0.77         0.66     0.71   0.2 s
medium  0.21   0.85        0.83         0.67     0.77   1.6 s
long    0.21   0.86        0.84         0.64     0.77   2.0 s
======  =====  ==========  ===========  =======  =====  ===========
"""
from __future__ import annotations

import dataclasses
import time
from typing import Dict, Tuple

import numpy as np

from tfrec.data import spec as spec_lib
from tfrec.data.synthetic.common import (DURATION_MEDIAN_S, SyntheticData, draw_brands, draw_items, draw_types,
                                          example_rows, oracle_metrics_inputs, pick_allowed)  # noqa: F401

NEGATIVE = spec_lib.BEHAVIOR_TYPES.index("negative")
ORDER = spec_lib.BEHAVIOR_TYPES.index("order")


@dataclasses.dataclass(frozen=True)
class PlantedTruth:
    """Constants of the planted click logit (see the module docstring for the formula).

    Attributes:
      behavior_weights: intensity weight ``w`` per behavior type (``BEHAVIOR_TYPES`` order).
      amount_weight: ``a``, weight of ``log1p(amount)`` for ``"order"`` behaviors.
      affinity_weight: ``alpha``, weight of the saturating long-term affinity ``log1p(W_c)``.
      recency_weight: ``gamma``, weight of the group recency bonus ``R_c``.
      recency_days: ``tau``, decay time (days) of the recency bonus.
      negative_penalty: ``beta``, logit penalty when the group's latest behavior is negative.
      bias: logit of a topic the user never touched.
    """

    behavior_weights: Tuple[float, ...] = (0.5, 1.0, 2.0, 2.0, 3.0, 0.0)
    amount_weight: float = 0.25
    affinity_weight: float = 0.6
    recency_weight: float = 1.0
    recency_days: float = 30.0
    negative_penalty: float = 1.0
    bias: float = -3.5

    def __post_init__(self):
        if len(self.behavior_weights) != len(spec_lib.BEHAVIOR_TYPES):
            raise ValueError(
                f"PlantedTruth.behavior_weights needs one weight per behavior type "
                f"({len(spec_lib.BEHAVIOR_TYPES)}). Received: behavior_weights={self.behavior_weights!r}"
            )
        if self.recency_days <= 0:
            raise ValueError(
                f"PlantedTruth.recency_days must be > 0. Received: recency_days={self.recency_days!r}"
            )


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Sizes and knobs of the synthetic data set (``SyntheticConfig.preset`` for named sizes).

    Attributes:
      n_users: number of users.
      n_items: number of items (ids ``0..n_items-1``).
      n_topics: number of latent topics (the groups K-means should recover).
      embedding_dim: D, dimension of the items' "multimodal" embeddings.
      n_user_segments: vocabulary of the ``user_segment`` profile feature (drawn uniformly; it
        carries no signal).
      min_history_length: fewest behaviors in a user's whole (lifelong) history.
      max_history_length: most behaviors in a user's history; also the spec's
        ``max_history_length``.
      train_examples_per_user: train requests per user.
      test_examples_per_user: test requests per user.
      time_span_days: length of the behavior span in days.
      start_timestamp: unix seconds at which the span starts.
      train_start_fraction: train requests start at this fraction of the span.
      test_cutoff_fraction: the time split; train requests before it, test requests after it.
      min_user_topics: fewest preferred topics per user.
      max_user_topics: most preferred topics per user.
      phase_overlap: each phase is extended by this fraction of the span on both sides.
      favorites_per_topic: most favourite items per (user, preferred topic) (at least 2).
      favorite_prob: probability that a preferred-topic behavior hits a favourite item.
      revisit_prob: probability that a behavior revisits any alive preferred topic.
      noise_topic_prob: probability that a behavior goes to a random non-preferred topic.
      negative_prob: probability of a sporadic negative behavior.
      late_negative_prob: probability that a phase ending before the span's end is closed by a
        late negative (and never revisited).
      target_own_topic_prob: probability that a request's target is from a preferred topic.
      centroid_scale: standard deviation of the topic centroids' coordinates.
      embedding_noise: standard deviation of the per-item noise around its centroid.
      truth: the constants of the planted click logit.
      topics_per_category: topics sharing one item ``category`` (a side feature coarser than
        the latent topic: informative, not the answer).
      brands_per_topic: ``brand`` ids drawn mostly from their topic's pool.
      brand_noise: probability that an item's brand is a uniformly random brand instead.
      seed: seed of ``np.random.default_rng``; the same seed gives identical data.
    """

    n_users: int = 300
    n_items: int = 600
    n_topics: int = 16
    embedding_dim: int = 16
    n_user_segments: int = 8
    min_history_length: int = 100
    max_history_length: int = 400
    train_examples_per_user: int = 20
    test_examples_per_user: int = 10
    time_span_days: int = 730
    start_timestamp: int = 1_600_000_000
    train_start_fraction: float = 0.7
    test_cutoff_fraction: float = 0.9
    min_user_topics: int = 3
    max_user_topics: int = 6
    phase_overlap: float = 0.03
    favorites_per_topic: int = 6
    favorite_prob: float = 0.7
    revisit_prob: float = 0.02
    noise_topic_prob: float = 0.04
    negative_prob: float = 0.015
    late_negative_prob: float = 0.25
    target_own_topic_prob: float = 0.6
    centroid_scale: float = 1.0
    embedding_noise: float = 0.15
    truth: PlantedTruth = PlantedTruth()
    topics_per_category: int = 4
    brands_per_topic: int = 3
    brand_noise: float = 0.3
    seed: int = 0

    @property
    def n_categories(self) -> int:
        return -(-self.n_topics // self.topics_per_category)

    @property
    def n_brands(self) -> int:
        return self.n_topics * self.brands_per_topic

    def __post_init__(self):
        for name in ("n_users", "n_items", "n_topics", "embedding_dim", "n_user_segments",
                     "min_history_length", "max_history_length", "train_examples_per_user",
                     "test_examples_per_user", "time_span_days", "min_user_topics",
                     "max_user_topics", "favorites_per_topic", "topics_per_category", "brands_per_topic"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"SyntheticConfig.{name} must be a positive int. Received: {name}={value!r}")
        if self.min_history_length > self.max_history_length:
            raise ValueError(
                "SyntheticConfig.min_history_length must be <= max_history_length. Received: "
                f"min_history_length={self.min_history_length}, max_history_length={self.max_history_length}"
            )
        if not self.min_user_topics <= self.max_user_topics < self.n_topics:
            raise ValueError(
                "SyntheticConfig needs min_user_topics <= max_user_topics < n_topics. Received: "
                f"min_user_topics={self.min_user_topics}, max_user_topics={self.max_user_topics}, "
                f"n_topics={self.n_topics}"
            )
        if self.n_items < 2 * self.n_topics:
            raise ValueError(
                f"SyntheticConfig.n_items must be >= 2 * n_topics. Received: n_items={self.n_items}, "
                f"n_topics={self.n_topics}"
            )
        if not 0.0 <= self.train_start_fraction < self.test_cutoff_fraction < 1.0:
            raise ValueError(
                "SyntheticConfig needs 0 <= train_start_fraction < test_cutoff_fraction < 1. Received: "
                f"train_start_fraction={self.train_start_fraction}, "
                f"test_cutoff_fraction={self.test_cutoff_fraction}"
            )
        for name in ("phase_overlap", "favorite_prob", "revisit_prob", "noise_topic_prob",
                     "negative_prob", "late_negative_prob", "target_own_topic_prob", "brand_noise"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SyntheticConfig.{name} must lie in [0, 1]. Received: {name}={value!r}")
        if self.revisit_prob + self.noise_topic_prob > 1.0:
            raise ValueError(
                "SyntheticConfig needs revisit_prob + noise_topic_prob <= 1. Received: "
                f"revisit_prob={self.revisit_prob}, noise_topic_prob={self.noise_topic_prob}"
            )

    @classmethod
    def preset(cls, name: str, **overrides) -> "SyntheticConfig":
        """A named size: ``"small"`` (tests, ~1 s), ``"medium"`` (demo default), ``"long"``.

        Args:
          name: one of ``PRESETS``.
          **overrides: fields to replace, e.g. ``seed=3``.
        """
        if name not in PRESETS:
            raise ValueError(
                f"Unknown SyntheticConfig preset. Expected one of {sorted(PRESETS)}. Received: name={name!r}"
            )
        return cls(**{**PRESETS[name], **overrides})


PRESETS: Dict[str, dict] = {
    # Tests: generates in ~0.2 s.
    "small": dict(n_users=300, n_items=600, n_topics=16, embedding_dim=16, min_history_length=100,
                  max_history_length=400, train_examples_per_user=20, test_examples_per_user=10,
                  min_user_topics=4, max_user_topics=7),
    # Demo default.
    "medium": dict(n_users=2000, n_items=5000, n_topics=50, embedding_dim=32, min_history_length=200,
                   max_history_length=1500, train_examples_per_user=30, test_examples_per_user=10,
                   min_user_topics=4, max_user_topics=8),
    # Lifelong histories for benchmarks.
    "long": dict(n_users=1000, n_items=20000, n_topics=100, embedding_dim=32, min_history_length=1000,
                 max_history_length=10000, train_examples_per_user=20, test_examples_per_user=10,
                 min_user_topics=5, max_user_topics=10,
                 # Longer histories mean larger weighted counts: a smaller alpha and bias keep the
                 # base CTR (~21%) and oracle AUC (~0.86) close to the other presets'.
                 truth=PlantedTruth(affinity_weight=0.5, bias=-3.8)),
}


def true_click_logit(hist_topic, hist_behavior_type, hist_timestamp, hist_amount, target_topic,
                     request_timestamp, truth: PlantedTruth = PlantedTruth()) -> np.ndarray:
    """The planted click logit of one user's requests (module docstring, "planted click probability").

    Only behaviors strictly before each request count (``t_j < request_timestamp``), so passing a
    user's full history is safe.

    Args:
      hist_topic: int ``[n]``, latent topic of each behavior's item.
      hist_behavior_type: int ``[n]``, index into ``BEHAVIOR_TYPES``.
      hist_timestamp: int ``[n]``, unix seconds (any order).
      hist_amount: float ``[n]``, order amount (only read for ``"order"`` behaviors).
      target_topic: int scalar or ``[m]``, topic of each request's target item.
      request_timestamp: int scalar or ``[m]``, unix seconds of each request.
      truth: the constants, default ``PlantedTruth()``.

    Returns:
      float64 array of the broadcast shape of ``target_topic`` and ``request_timestamp``.
    """
    topic = np.asarray(hist_topic, np.int64)
    btype = np.asarray(hist_behavior_type, np.int64)
    ts = np.asarray(hist_timestamp, np.int64)
    amount = np.asarray(hist_amount, np.float64)
    target, t_req = np.broadcast_arrays(np.asarray(target_topic, np.int64),
                                        np.asarray(request_timestamp, np.int64))
    order = np.argsort(ts, kind="stable")
    topic, btype, ts, amount = topic[order], btype[order], ts[order], amount[order]
    weight = np.asarray(truth.behavior_weights, np.float64)[btype]
    weight = weight + truth.amount_weight * (btype == ORDER) * np.log1p(np.maximum(amount, 0.0))

    target_flat, t_flat = target.ravel(), t_req.ravel()
    logit = np.full(target_flat.shape, truth.bias, np.float64)
    for c in np.unique(target_flat):
        rows = np.flatnonzero(target_flat == c)
        in_c = topic == c
        ts_c = ts[in_c]
        if ts_c.size == 0:
            continue
        cum_w = np.cumsum(weight[in_c])
        # k = number of topic-c behaviors strictly before the request.
        k = np.searchsorted(ts_c, t_flat[rows], side="left")
        seen = k > 0
        last = np.maximum(k - 1, 0)
        w_c = np.where(seen, cum_w[last], 0.0)
        negative = seen & (btype[in_c][last] == NEGATIVE)
        delta_days = (t_flat[rows] - ts_c[last]) / spec_lib.SECONDS_PER_DAY
        recency = np.where(seen, np.exp(-delta_days / truth.recency_days), 0.0)
        interest = truth.affinity_weight * np.log1p(w_c) + truth.recency_weight * recency
        logit[rows] += np.where(negative, -truth.negative_penalty, interest)
    return logit.reshape(target.shape)


def true_click_probability(hist_topic, hist_behavior_type, hist_timestamp, hist_amount, target_topic,
                           request_timestamp, truth: PlantedTruth = PlantedTruth()) -> np.ndarray:
    """``sigmoid(true_click_logit(...))``; same arguments as ``true_click_logit``."""
    logit = true_click_logit(hist_topic, hist_behavior_type, hist_timestamp, hist_amount, target_topic,
                             request_timestamp, truth)
    return 1.0 / (1.0 + np.exp(-logit))


def _make_items(config: SyntheticConfig, rng: np.random.Generator):
    """Items: balanced topics, centroid + noise embeddings, Zipf popularity within a topic, prices."""
    topic = rng.permutation(np.arange(config.n_items) % config.n_topics).astype(np.int64)
    centroids = rng.normal(0.0, config.centroid_scale, (config.n_topics, config.embedding_dim))
    noise = rng.normal(0.0, config.embedding_noise, (config.n_items, config.embedding_dim))
    embedding = (centroids[topic] + noise).astype(np.float32)
    popularity = rng.permutation(config.n_items).astype(np.float64)
    popularity = 1.0 / (1.0 + popularity) ** 0.5
    price = np.exp(rng.normal(np.log(25.0), 0.8, config.n_items))
    # Items sorted by topic, and a global CDF whose topic-c segment rises from c to c + 1, so
    # searchsorted(cdf, c + u) draws a popularity-weighted item of topic c for u ~ U[0, 1).
    by_topic = np.argsort(topic, kind="stable")
    cdf = np.empty(config.n_items)
    for c in range(config.n_topics):
        seg = np.flatnonzero(topic[by_topic] == c)
        p = popularity[by_topic[seg]]
        cdf[seg] = c + np.cumsum(p) / p.sum()
        cdf[seg[-1]] = c + 1.0
    items = {"item_id": np.arange(config.n_items, dtype=np.int64), "topic": topic, "embedding": embedding,
             **_side_features(config, topic)}
    return items, price, by_topic, cdf


def _side_features(config: SyntheticConfig, topic: np.ndarray) -> Dict[str, np.ndarray]:
    """``category`` (``topics_per_category`` shuffled topics each) and a noisy ``brand``.

    Drawn from their own stream (``default_rng([seed, 1])``), so adding them left every other
    generated value unchanged.
    """
    rng = np.random.default_rng([config.seed, 1])
    category_of_topic = rng.permutation(config.n_topics) // config.topics_per_category
    brand = draw_brands(rng, topic, config.brands_per_topic, config.n_brands, config.brand_noise)
    return {"category": category_of_topic[topic].astype(np.int64), "brand": brand}


def _user_history(config, rng, n, price, by_topic, cdf):
    """One user's preferred topics and lifelong history (module docstring, "Users and behaviors")."""
    n_topics = config.n_topics
    n_pref = int(rng.integers(config.min_user_topics, config.max_user_topics + 1))
    preferred = rng.choice(n_topics, n_pref, replace=False)
    others = np.setdiff1d(np.arange(n_topics), preferred)
    # Phases: consecutive windows (fractions of the span), extended by phase_overlap each side.
    bounds = np.concatenate([[0.0], np.sort(rng.random(n_pref - 1)), [1.0]])
    starts, ends = bounds[:-1] - config.phase_overlap, bounds[1:] + config.phase_overlap
    ends[-1] = np.inf
    late_negative = (bounds[1:] < 1.0) & (rng.random(n_pref) < config.late_negative_prob)
    dies_at = np.where(late_negative, ends, np.inf)
    intensity = rng.random(n_pref)
    n_fav = rng.integers(2, max(config.favorites_per_topic, 2) + 1, n_pref)
    favorites = [draw_items(rng, np.full(m, c), by_topic, cdf) for m, c in zip(n_fav, preferred)]

    frac = np.sort(rng.random(n))
    span_s = config.time_span_days * spec_lib.SECONDS_PER_DAY
    ts = config.start_timestamp + np.floor(frac * span_s).astype(np.int64)
    u = rng.random(n)
    is_noise = u < config.noise_topic_prob
    is_revisit = ~is_noise & (u < config.noise_topic_prob + config.revisit_prob)
    active = (frac[:, None] >= starts[None, :]) & (frac[:, None] < ends[None, :])
    alive = frac[:, None] < dies_at[None, :]
    k = np.where(is_revisit, pick_allowed(rng, alive), pick_allowed(rng, active & alive))
    topic = np.where(is_noise, others[rng.integers(0, len(others), n)], preferred[k])

    item = draw_items(rng, topic, by_topic, cdf)
    use_fav = ~is_noise & (rng.random(n) < config.favorite_prob)
    for j in range(n_pref):
        rows = np.flatnonzero(use_fav & (k == j))
        item[rows] = favorites[j][rng.integers(0, n_fav[j], rows.size)]
    btype = draw_types(rng, np.where(is_noise, 0.0, intensity[k]))
    btype[rng.random(n) < config.negative_prob] = NEGATIVE
    for j in np.flatnonzero(late_negative):
        rows = np.flatnonzero(~is_noise & (k == j))
        if rows.size:
            btype[rows[-1]] = NEGATIVE
    duration = DURATION_MEDIAN_S[btype] * np.exp(rng.normal(0.0, 0.7, n))
    quantity = 1 + rng.poisson(0.3, n)
    amount = np.where(btype == ORDER, price[item] * quantity, 0.0)
    return preferred, topic, item, btype, ts, duration, amount


def generate(config: SyntheticConfig) -> SyntheticData:
    """Generate items, lifelong histories and time-split train/test examples.

    Args:
      config: sizes, knobs and seed (``SyntheticConfig.preset("small")`` etc.).

    Returns:
      A ``SyntheticData``; identical for identical configs.
    """
    rng = np.random.default_rng(config.seed)
    spec = spec_lib.FeatureSpec(n_items=config.n_items, n_user_segments=config.n_user_segments,
                                max_history_length=config.max_history_length)
    items, price, by_topic, cdf = _make_items(config, rng)
    lengths = np.exp(rng.uniform(np.log(config.min_history_length), np.log(config.max_history_length + 1),
                                 config.n_users)).astype(np.int64)
    lengths = np.clip(lengths, config.min_history_length, config.max_history_length)
    span_s = config.time_span_days * spec_lib.SECONDS_PER_DAY
    windows = {
        "train": (config.train_start_fraction, config.test_cutoff_fraction, config.train_examples_per_user),
        "test": (config.test_cutoff_fraction, 1.0, config.test_examples_per_user),
    }
    histories = []
    columns = {split: {f.name: [] for f in spec.example_record_features(with_true_prob=True)}
               for split in windows}
    for user in range(config.n_users):
        preferred, topic, item, btype, ts, duration, amount = _user_history(
            config, rng, int(lengths[user]), price, by_topic, cdf)
        histories.append({
            "user_id": np.int64(user),
            "user_segment": np.int64(rng.integers(0, config.n_user_segments)),
            "hist_item_id": item.astype(np.int64),
            "hist_behavior_type": btype.astype(np.int64),
            "hist_timestamp": ts,
            "hist_duration": duration.astype(np.float32),
            "hist_amount": amount.astype(np.float32),
        })
        for split, (lo, hi, m) in windows.items():
            t_req = config.start_timestamp + np.sort(
                np.floor(rng.uniform(lo, hi, m) * span_s)).astype(np.int64)
            own = rng.random(m) < config.target_own_topic_prob
            target_topic = np.where(own, rng.choice(preferred, m), rng.integers(0, config.n_topics, m))
            target_item = draw_items(rng, target_topic, by_topic, cdf)
            prob = true_click_probability(topic, btype, ts, amount, target_topic, t_req, config.truth)
            label = (rng.random(m) < prob).astype(np.int64)
            col = columns[split]
            col["user_id"].append(np.full(m, user, np.int64))
            col["item_id"].append(target_item)
            col["request_timestamp"].append(t_req)
            col["label"].append(label)
            col["true_prob"].append(prob)
    examples = example_rows(spec, columns)
    return SyntheticData(config=config, spec=spec, items=items, histories=histories,
                         train=examples["train"], test=examples["test"])


def _main():  # pragma: no cover - manual timing helper
    import sys

    for name in sys.argv[1:] or ["small"]:
        start = time.perf_counter()
        data = generate(SyntheticConfig.preset(name))
        elapsed = time.perf_counter() - start
        n_behaviors = sum(len(h["hist_item_id"]) for h in data.histories)
        print(f"{name}: {elapsed:.2f} s, {n_behaviors} behaviors, "
              f"{len(data.train)} train, {len(data.test)} test examples")


if __name__ == "__main__":  # pragma: no cover
    _main()
