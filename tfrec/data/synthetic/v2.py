"""Synthetic data **v2**: a planted click probability in which every term is one paper's claim.

v1 (``tfrec.data.synthetic.v1``) planted a truth that depended only on the target topic's own
sub-history: nothing spanned groups and order explained little, so a retrieval baseline beat DMGIN
by construction and no claim of DMGIN, DMQN, SIREN, CHIME, DIEN or DSIN could be tested. v2 plants
one term per claim, each with a weight in ``PlantedTruth`` (0 switches it off), and
``tfrec.data.synthetic.report`` measures the oracle with each term removed and the information
ceilings of the classic shortcuts (last 50 behaviors, SIM hard / soft top-50, whole history without
order). Pure numpy; ``generate(config)`` is deterministic under ``config.seed``.

The world
---------
**Semantic hierarchy.** ``n_categories`` categories of ``topics_per_category`` topics each; items are
balanced over topics. An item's "multimodal" embedding is ``category_scale * u_category +
topic_scale * v_topic + embedding_noise * e_item`` (standard normal u, v, e), so the vectors carry
the hierarchy at two levels: coarse K-means / RQ-VAE level-1 codes find categories, finer ones
topics. ``category`` (a side feature) is the item's content category.

**Content / collaborative misalignment** (SIREN's motivation). Every item has a *content topic*
(``items["content_topic"]``, what its embedding shows) and an *audience topic* (``items["topic"]``,
whose users engage with it and click it). They agree except for a fraction ``misaligned_fraction``
of items whose audience is a random topic of another category: their vectors point the wrong way,
only their ids (and behavior co-occurrence) tell the truth. ``brand`` follows the audience topic.

**Interest evolution across groups.** Each topic has ``successors_per_topic`` successor topics in
other categories (a sparse Markov chain, ``world.successors``). A user's preferred topics are a walk
on it (each next preferred topic is a successor of the previous one with probability
``chain_prob``), lived as consecutive phases. The planted truth rewards a target whose predecessor
topics were engaged *after* the user last touched the target's topic: the order of groups matters,
and the decisive behaviors are in other categories (SIM hard's retrieval misses them).

**Sessions and funnels.** Behaviors come in sessions (``session_mean_length`` behaviors, gaps
``session_gap_s`` apart) around one topic, a share ``session_sibling_prob`` spilling to sibling
topics of the same category. Within a session, behavior types run up the funnel (view -> click ->
favorite -> cart -> order, sporadic negatives last), so the type of a group's latest behavior (an
abandoned cart, a fresh order, a negative) depends on the order inside the group. A preferred topic
whose phase ends early is, with probability ``late_negative_prob``, closed by a late negative (its
last behavior becomes negative) and never revisited, not even by a sibling spill. Within a
preferred topic a behavior hits one of the user's 2 to ``favorites_per_topic`` favourite items with
probability ``favorite_prob``: items repeat with varying types.

**Requests.** ``train_examples_per_user`` requests in ``[train_start_fraction,
test_cutoff_fraction)`` of the span and ``test_examples_per_user`` after it (a time split). With
probability ``in_session_prob`` a request follows one of the user's behaviors within
``session_request_max_s`` (the user is in a session), else it is uniform in its window. Its target
is drawn from a mixture (``target_mix``): the current session's topic or a sibling of it, a successor
of a recently engaged topic, an item the user engaged with before, one of the user's preferred
topics whose phase has begun, or a uniformly random topic; then a popularity-weighted item of that
audience topic. A kind that needs a past it does not have (``session``: a behavior within
``session_window_s``; ``next`` and ``repeat``: any behavior) falls back to a begun preferred topic or
a random one, half each (so about half of the ``session`` draws are real sessions).
``label ~ Bernoulli(true_prob)``. Target choice reads only behaviors before the request and the
phases begun by then.

The planted click probability
-----------------------------
For a request at time ``t`` on item ``i`` of audience topic ``c`` and category ``g = cat(c)``, over
the user's behaviors ``j`` with ``t_j < t`` only (no future leakage), in time order, with
``w_j = w[type_j] + a * [type_j = order] * log1p(amount_j)``:

.. code-block:: text

    W   = sum_{topic_j = c} w_j                            intensity: long-term, whole history
    L   = the latest behavior with topic_j = c (if any)
    R   = exp(-(t - t_L) / tau)                            recency of the group
    F   = funnel[type_L];  N = [type_L = negative]         order inside the group
    H   = sum_{cat(topic_j) = g, topic_j != c} w_j         hierarchy: sibling topics' interest
    E   = sum_{c in succ(topic_j), j after L} w_j          evolution: predecessors engaged since L
    S   = #{j: t - t_j <= session_window, topic_j = c}
          + sibling_share * #{... cat(topic_j) = g, topic_j != c}   session: current intent
    I   = sum_{item_j = i} w_j                             repeat: the very item before
    logit = bias + (1 - N) * (alpha log1p W + gamma R + phi F + eta log1p H + rho log1p I)
            - beta N + epsilon log1p E + sigma log1p S

The "order" term is everything the group's latest behavior decides: ``F``, and ``N`` (the penalty and
the gate on the group terms); it is off when both ``order`` and ``negative_penalty`` are 0, and its
ablation removes both (measured on ``small``: the funnel ``F`` alone carries about 0.007 AUC, the
negative's gate and penalty the rest). The eighth term, **misalignment**, is structural: the truth
reads audience topics. The oracle with it "removed" reads content topics instead, i.e. what a model
that trusts the vectors alone believes.

Measured figures (oracle, oracle ablation, shortcut ceilings) are in ``docs/synthetic.md``; regenerate
them with ``tfrec synthetic --size SIZE --report``.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Dict, Sequence, Tuple

import numpy as np

from tfrec.data import spec as spec_lib
from tfrec.data.synthetic.common import (DURATION_MEDIAN_S, SyntheticData, draw_brands, draw_items, draw_types,
                                          example_rows, pick_allowed)

NEGATIVE = spec_lib.BEHAVIOR_TYPES.index("negative")
ORDER = spec_lib.BEHAVIOR_TYPES.index("order")
N_TYPES = len(spec_lib.BEHAVIOR_TYPES)
# Funnel stage of each type: a session's types are sorted by it (negatives end a session).
_FUNNEL_STAGE = np.array([0, 1, 2, 3, 4, 5])

#: The planted terms, in the order of the oracle-ablation table.
TERMS: Tuple[str, ...] = ("intensity", "recency", "order", "hierarchy", "evolution", "session", "repeat",
                          "misalignment")
#: Request target kinds of ``SyntheticConfig.target_mix``.
TARGET_KINDS: Tuple[str, ...] = ("session", "next", "repeat", "own", "random")


@dataclasses.dataclass(frozen=True)
class PlantedTruth:
    """Weights of the planted click logit (module docstring); a term with weight 0 is off (the order
    term: ``order`` and ``negative_penalty`` both 0).

    Attributes:
      behavior_weights: ``w`` per behavior type (``BEHAVIOR_TYPES`` order).
      amount_weight: ``a``, weight of ``log1p(amount)`` for ``"order"`` behaviors.
      intensity: ``alpha``, weight of ``log1p(W)``, the whole-history interest in the topic.
      recency: ``gamma``, weight of the group recency ``R``.
      recency_days: ``tau`` in days.
      funnel: ``F`` per type of the group's latest behavior (``BEHAVIOR_TYPES`` order).
      order: ``phi``, weight of ``F``.
      negative_penalty: ``beta``, logit penalty when the group's latest behavior is negative (this
        and ``phi`` together are the "order" term).
      hierarchy: ``eta``, weight of ``log1p(H)``, interest in the target category's other topics.
      evolution: ``epsilon``, weight of ``log1p(E)``, predecessor topics engaged since the group.
      session: ``sigma``, weight of ``log1p(S)``, the current session's intent.
      session_window_s: behaviors this recent (seconds) are the current session.
      sibling_share: weight of a sibling-topic behavior in ``S``.
      repeat: ``rho``, weight of ``log1p(I)``, past engagement with the target item itself.
      bias: logit of an item the user never came near.
    """

    behavior_weights: Tuple[float, ...] = (0.5, 1.0, 2.0, 2.0, 3.0, 0.0)
    amount_weight: float = 0.25
    intensity: float = 0.5
    recency: float = 2.0
    recency_days: float = 30.0
    funnel: Tuple[float, ...] = (0.0, 0.3, 0.6, 1.2, -0.6, 0.0)
    order: float = 0.8
    negative_penalty: float = 1.0
    hierarchy: float = 0.5
    evolution: float = 0.5
    session: float = 1.2
    session_window_s: float = 3600.0
    sibling_share: float = 0.5
    repeat: float = 1.3
    bias: float = -6.0

    def __post_init__(self):
        for name in ("behavior_weights", "funnel"):
            if len(getattr(self, name)) != N_TYPES:
                raise ValueError(f"PlantedTruth.{name} needs one value per behavior type ({N_TYPES}). "
                                 f"Received: {name}={getattr(self, name)!r}")
        for name in ("recency_days", "session_window_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"PlantedTruth.{name} must be > 0. Received: {name}={getattr(self, name)!r}")

    def without(self, *terms: str) -> "PlantedTruth":
        """These weights with the given terms switched off (``"misalignment"`` is not a weight:
        pass it to ``true_click_logit(drop=...)``)."""
        off = {"intensity": dict(intensity=0.0), "recency": dict(recency=0.0),
               "order": dict(order=0.0, negative_penalty=0.0), "hierarchy": dict(hierarchy=0.0),
               "evolution": dict(evolution=0.0), "session": dict(session=0.0), "repeat": dict(repeat=0.0)}
        changes = {}
        for term in terms:
            if term not in off:
                raise ValueError(f"Unknown planted term. Expected one of {sorted(off)}. Received: {term!r}")
            changes.update(off[term])
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class World:
    """The hidden structure the planted truth reads besides ``items``.

    Attributes:
      topic: int64 ``[n_items]``, audience topic of each item (the truth's topic).
      content_topic: int64 ``[n_items]``, the topic each item's embedding shows.
      category_of_topic: int64 ``[n_topics]``, the hierarchy (topic -> category).
      successors: int64 ``[n_topics, S]``, the topic transition chain.
      embedding: float32 ``[n_items, D]``, the items' "multimodal" vectors.
    """

    topic: np.ndarray
    content_topic: np.ndarray
    category_of_topic: np.ndarray
    successors: np.ndarray
    embedding: np.ndarray

    @property
    def n_topics(self) -> int:
        return len(self.category_of_topic)

    @functools.cached_property
    def predecessor(self) -> np.ndarray:
        """bool ``[n_topics, n_topics]``: ``[a, c]`` is True when ``c`` is a successor of ``a`` (built once;
        the truth reads it for every user)."""
        pred = np.zeros((self.n_topics, self.n_topics), bool)
        pred[np.repeat(np.arange(self.n_topics), self.successors.shape[1]), self.successors.ravel()] = True
        return pred


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Sizes and knobs of the v2 data (``SyntheticConfig.preset`` for named sizes).

    Attributes:
      n_users, n_items: numbers of users and items.
      n_categories, topics_per_category: the semantic hierarchy (``n_topics`` = their product).
      embedding_dim: D of the items' "multimodal" vectors.
      category_scale, topic_scale, embedding_noise: the vectors' three levels (module docstring).
      misaligned_fraction: share of items whose audience topic is in another category.
      successors_per_topic: out-degree of the topic transition chain.
      chain_prob: probability that a user's next preferred topic follows the chain.
      n_user_segments: vocabulary of the ``user_segment`` profile feature (no signal).
      min_history_length, max_history_length: lifelong history length range (log-uniform).
      train_examples_per_user, test_examples_per_user: requests per user and split.
      time_span_days, start_timestamp: the behavior span.
      train_start_fraction, test_cutoff_fraction: the request windows (the time split).
      min_user_topics, max_user_topics: preferred topics per user.
      phase_overlap: each phase is extended by this fraction of the span on both sides.
      session_mean_length: mean behaviors per session.
      session_gap_s: mean gap (seconds) between behaviors of a session.
      session_sibling_prob: probability that a session behavior goes to a sibling topic.
      favorites_per_topic, favorite_prob: favourite items per preferred topic, and how often hit.
      revisit_prob: probability that a session revisits any alive preferred topic.
      noise_topic_prob: probability that a session is about a random non-preferred topic.
      negative_prob: probability of a sporadic negative behavior.
      late_negative_prob: probability that a phase ending early is closed by a late negative.
      in_session_prob: probability that a request follows a behavior within minutes.
      session_request_max_s: the most seconds between that behavior and the request.
      target_mix: probabilities of the request target kinds ``TARGET_KINDS``.
      brands_per_topic, brand_noise: the ``brand`` side feature (as in v1).
      truth: the planted click logit's weights.
      seed: seed of every random draw.
    """

    n_users: int = 300
    n_items: int = 600
    n_categories: int = 4
    topics_per_category: int = 4
    embedding_dim: int = 16
    category_scale: float = 1.0
    topic_scale: float = 0.6
    embedding_noise: float = 0.12
    misaligned_fraction: float = 0.1
    successors_per_topic: int = 2
    chain_prob: float = 0.7
    n_user_segments: int = 8
    min_history_length: int = 100
    max_history_length: int = 400
    train_examples_per_user: int = 20
    test_examples_per_user: int = 10
    time_span_days: int = 730
    start_timestamp: int = 1_600_000_000
    train_start_fraction: float = 0.7
    test_cutoff_fraction: float = 0.9
    min_user_topics: int = 4
    max_user_topics: int = 7
    phase_overlap: float = 0.03
    session_mean_length: float = 6.0
    session_gap_s: float = 90.0
    session_sibling_prob: float = 0.2
    favorites_per_topic: int = 6
    favorite_prob: float = 0.5
    revisit_prob: float = 0.03
    noise_topic_prob: float = 0.05
    negative_prob: float = 0.015
    late_negative_prob: float = 0.25
    in_session_prob: float = 0.5
    session_request_max_s: float = 1200.0
    target_mix: Tuple[float, ...] = (0.2, 0.15, 0.1, 0.25, 0.3)
    brands_per_topic: int = 3
    brand_noise: float = 0.3
    truth: PlantedTruth = PlantedTruth()
    seed: int = 0

    @property
    def n_topics(self) -> int:
        return self.n_categories * self.topics_per_category

    @property
    def n_brands(self) -> int:
        return self.n_topics * self.brands_per_topic

    def __post_init__(self):
        for name in ("n_users", "n_items", "n_categories", "topics_per_category", "embedding_dim",
                     "successors_per_topic", "n_user_segments", "min_history_length", "max_history_length",
                     "train_examples_per_user", "test_examples_per_user", "time_span_days", "min_user_topics",
                     "max_user_topics", "favorites_per_topic", "brands_per_topic"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"SyntheticConfig.{name} must be a positive int. Received: {name}={value!r}")
        if self.n_categories < 2:
            raise ValueError(f"SyntheticConfig.n_categories must be >= 2 (misaligned items and successors "
                             f"live in another category). Received: n_categories={self.n_categories}")
        if self.min_history_length > self.max_history_length:
            raise ValueError("SyntheticConfig.min_history_length must be <= max_history_length. Received: "
                             f"min_history_length={self.min_history_length}, "
                             f"max_history_length={self.max_history_length}")
        if not self.min_user_topics <= self.max_user_topics < self.n_topics:
            raise ValueError("SyntheticConfig needs min_user_topics <= max_user_topics < n_topics. Received: "
                             f"min_user_topics={self.min_user_topics}, max_user_topics={self.max_user_topics}, "
                             f"n_topics={self.n_topics}")
        if self.n_items < 2 * self.n_topics:
            raise ValueError(f"SyntheticConfig.n_items must be >= 2 * n_topics. Received: n_items={self.n_items}, "
                             f"n_topics={self.n_topics}")
        if self.successors_per_topic > self.n_topics - self.topics_per_category:
            raise ValueError("SyntheticConfig.successors_per_topic must be <= the topics outside a category. "
                             f"Received: successors_per_topic={self.successors_per_topic}")
        if not 0.0 <= self.train_start_fraction < self.test_cutoff_fraction < 1.0:
            raise ValueError("SyntheticConfig needs 0 <= train_start_fraction < test_cutoff_fraction < 1. "
                             f"Received: train_start_fraction={self.train_start_fraction}, "
                             f"test_cutoff_fraction={self.test_cutoff_fraction}")
        for name in ("misaligned_fraction", "chain_prob", "phase_overlap", "session_sibling_prob", "favorite_prob",
                     "revisit_prob", "noise_topic_prob", "negative_prob", "late_negative_prob", "in_session_prob",
                     "brand_noise"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SyntheticConfig.{name} must lie in [0, 1]. Received: {name}={value!r}")
        if self.revisit_prob + self.noise_topic_prob > 1.0:
            raise ValueError("SyntheticConfig needs revisit_prob + noise_topic_prob <= 1. Received: "
                             f"revisit_prob={self.revisit_prob}, noise_topic_prob={self.noise_topic_prob}")
        for name in ("session_mean_length", "session_gap_s", "session_request_max_s", "category_scale",
                     "topic_scale", "embedding_noise"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SyntheticConfig.{name} must be > 0. Received: {name}={getattr(self, name)!r}")
        mix = np.asarray(self.target_mix, np.float64)
        if mix.shape != (len(TARGET_KINDS),) or np.any(mix < 0) or not np.isclose(mix.sum(), 1.0):
            raise ValueError(f"SyntheticConfig.target_mix needs {len(TARGET_KINDS)} non-negative probabilities "
                             f"summing to 1 ({', '.join(TARGET_KINDS)}). Received: target_mix={self.target_mix!r}")

    @classmethod
    def preset(cls, name: str, **overrides) -> "SyntheticConfig":
        """A named size: ``"small"`` (tests), ``"medium"`` (demo default), ``"long"`` (lifelong).

        Args:
          name: one of ``PRESETS``.
          **overrides: fields to replace, e.g. ``seed=3``.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown SyntheticConfig preset. Expected one of {sorted(PRESETS)}. "
                             f"Received: name={name!r}")
        return cls(**{**PRESETS[name], **overrides})


PRESETS: Dict[str, dict] = {
    "small": dict(),
    "medium": dict(n_users=2000, n_items=5000, n_categories=10, topics_per_category=5, embedding_dim=32,
                   min_history_length=200, max_history_length=1500, train_examples_per_user=30,
                   test_examples_per_user=10, min_user_topics=4, max_user_topics=8),
    # Ten times longer histories make the count terms larger and the oracle sharper, so the largest
    # terms (the order gate, misalignment) crowd the others out: long has fewer late negatives and
    # misaligned items and its own weights, which keep every term >= 0.01 AUC of the oracle on data
    # seeds 0-2 (docs/synthetic.md) and the CTR near 0.4.
    "long": dict(n_users=1000, n_items=20000, n_categories=20, topics_per_category=5, embedding_dim=32,
                 min_history_length=1000, max_history_length=10000, train_examples_per_user=20,
                 test_examples_per_user=10, min_user_topics=5, max_user_topics=10, late_negative_prob=0.12,
                 misaligned_fraction=0.07,
                 truth=PlantedTruth(bias=-7.4, intensity=0.5, negative_penalty=0.4, order=0.4, recency=2.4,
                                    repeat=1.3, hierarchy=0.6, evolution=0.55, session=1.8)),
}


# --------------------------------------------------------------------------------------------------
# The planted truth
# --------------------------------------------------------------------------------------------------

def true_click_logit(world: World, hist_item, hist_behavior_type, hist_timestamp, hist_amount, target_item,
                     request_timestamp, truth: PlantedTruth = PlantedTruth(), visible=None,
                     drop: Sequence[str] = ()) -> np.ndarray:
    """The planted click logit of one user's requests (module docstring, "planted click probability").

    Only behaviors strictly before each request count, so passing a user's full history is safe.
    The behaviors must be in time order (position order is the order the truth reads); the shortcut
    ceilings pass per-request views: a ``visible`` mask, or ``[m, n]`` attribute matrices (each row a
    permutation of the history) for "without order".

    Args:
      world: the hidden structure (``World``).
      hist_item, hist_behavior_type: int ``[n]`` or ``[m, n]``.
      hist_timestamp: int ``[n]``, non-decreasing (unix seconds).
      hist_amount: float ``[n]`` or ``[m, n]``.
      target_item: int ``[m]``; request_timestamp: int ``[m]``.
      truth: the weights.
      visible: optional bool ``[m, n]``: behaviors each request may read (ANDed with ``t_j < t``).
      drop: terms to remove (``TERMS``): the oracle-ablation table.

    Returns:
      float64 ``[m]``.
    """
    drop = tuple(drop)
    weights_off = [t for t in drop if t != "misalignment"]
    truth = truth.without(*weights_off) if weights_off else truth
    topic_of = world.content_topic if "misalignment" in drop else world.topic
    ts = np.asarray(hist_timestamp, np.int64)
    n = ts.shape[0]
    target_item = np.atleast_1d(np.asarray(target_item, np.int64))
    t_req = np.broadcast_to(np.asarray(request_timestamp, np.int64), target_item.shape)
    m = target_item.shape[0]
    item = np.broadcast_to(np.asarray(hist_item, np.int64), (m, n))
    btype = np.broadcast_to(np.asarray(hist_behavior_type, np.int64), (m, n))
    amount = np.broadcast_to(np.asarray(hist_amount, np.float64), (m, n))
    vis = ts[None, :] < t_req[:, None]
    if visible is not None:
        vis = vis & np.asarray(visible, bool)

    topic = topic_of[item]
    c = topic_of[target_item][:, None]
    category = world.category_of_topic[topic]
    g = world.category_of_topic[c]
    w = np.asarray(truth.behavior_weights)[btype]
    w = w + truth.amount_weight * (btype == ORDER) * np.log1p(np.maximum(amount, 0.0))
    w = np.where(vis, w, 0.0)

    in_c = vis & (topic == c)
    W = (w * in_c).sum(1)
    last = np.where(in_c, np.arange(n)[None, :], -1).max(1) if n else np.full(m, -1)
    seen = last >= 0
    at = np.maximum(last, 0)[:, None]
    last_type = np.take_along_axis(btype, at, 1)[:, 0] if n else np.zeros(m, np.int64)
    negative = seen & (last_type == NEGATIVE) & (truth.negative_penalty != 0 or truth.order != 0)
    last_ts = ts[at[:, 0]] if n else np.zeros(m, np.int64)
    R = np.where(seen, np.exp(-(t_req - last_ts) / (truth.recency_days * spec_lib.SECONDS_PER_DAY)), 0.0)
    F = np.where(seen, np.asarray(truth.funnel)[last_type], 0.0)
    sibling = vis & (category == g) & (topic != c)
    H = (w * sibling).sum(1)
    after = np.arange(n)[None, :] > last[:, None]
    E = (w * (after & world.predecessor[topic, c])).sum(1)
    recent = vis & ((t_req[:, None] - ts[None, :]) <= truth.session_window_s)
    S = (recent & in_c).sum(1) + truth.sibling_share * (recent & sibling).sum(1)
    I = (w * (item == target_item[:, None])).sum(1)

    group = (truth.intensity * np.log1p(W) + truth.recency * R + truth.order * F
             + truth.hierarchy * np.log1p(H) + truth.repeat * np.log1p(I))
    return (truth.bias + np.where(negative, -truth.negative_penalty, group)
            + truth.evolution * np.log1p(E) + truth.session * np.log1p(S))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------------

def make_world(config: SyntheticConfig, rng: np.random.Generator) -> Tuple[World, Dict[str, np.ndarray], dict]:
    """Items (hierarchy, misalignment, side features, popularity, prices) and the topic chain."""
    T, tpc, n_items = config.n_topics, config.topics_per_category, config.n_items
    category_of_topic = np.arange(T, dtype=np.int64) // tpc
    content_topic = rng.permutation(np.arange(n_items) % T).astype(np.int64)
    d = config.embedding_dim
    u = rng.normal(0.0, 1.0, (config.n_categories, d))
    v = rng.normal(0.0, 1.0, (T, d))
    e = rng.normal(0.0, 1.0, (n_items, d))
    embedding = (config.category_scale * u[category_of_topic[content_topic]] + config.topic_scale * v[content_topic]
                 + config.embedding_noise * e).astype(np.float32)
    # Misaligned items: the audience is a random topic of another category.
    topic = content_topic.copy()
    mis = np.flatnonzero(rng.random(n_items) < config.misaligned_fraction)
    shift = rng.integers(1, config.n_categories, mis.size)
    new_cat = (category_of_topic[content_topic[mis]] + shift) % config.n_categories
    topic[mis] = new_cat * tpc + rng.integers(0, tpc, mis.size)
    # The chain: successors in other categories.
    successors = np.empty((T, config.successors_per_topic), np.int64)
    for a in range(T):
        outside = np.flatnonzero(category_of_topic != category_of_topic[a])
        successors[a] = rng.choice(outside, config.successors_per_topic, replace=False)
    popularity = 1.0 / (1.0 + rng.permutation(n_items).astype(np.float64)) ** 0.5
    price = np.exp(rng.normal(np.log(25.0), 0.8, n_items))
    # Items sorted by audience topic and a global CDF whose topic-c segment rises from c to c + 1.
    by_topic = np.argsort(topic, kind="stable")
    cdf = np.empty(n_items)
    counts = np.bincount(topic, minlength=T)
    if counts.min() == 0:
        raise ValueError(f"SyntheticConfig: some topic has no item; raise n_items (n_items={n_items}, "
                         f"n_topics={T})")
    p = popularity[by_topic]
    ends = np.cumsum(counts)
    for c in range(T):
        seg = slice(ends[c] - counts[c], ends[c])
        cdf[seg] = c + np.cumsum(p[seg]) / p[seg].sum()
        cdf[ends[c] - 1] = c + 1.0
    brand = draw_brands(np.random.default_rng([config.seed, 1]), topic, config.brands_per_topic, config.n_brands,
                        config.brand_noise)
    world = World(topic=topic, content_topic=content_topic, category_of_topic=category_of_topic,
                  successors=successors, embedding=embedding)
    items = {"item_id": np.arange(n_items, dtype=np.int64), "topic": topic, "content_topic": content_topic,
             "embedding": embedding, "category": category_of_topic[content_topic].astype(np.int64),
             "brand": brand}
    return world, items, dict(price=price, by_topic=by_topic, cdf=cdf)


def _draw_items(rng, topics, sampler):
    """A popularity-weighted item of each given audience topic."""
    return draw_items(rng, topics, sampler["by_topic"], sampler["cdf"])


def _preferred_chain(config, rng, world):
    """A user's preferred topics, in phase order: a walk on the topic chain with random restarts."""
    n_pref = int(rng.integers(config.min_user_topics, config.max_user_topics + 1))
    chosen = [int(rng.integers(config.n_topics))]
    while len(chosen) < n_pref:
        nxt = [s for s in world.successors[chosen[-1]] if s not in chosen]
        if nxt and rng.random() < config.chain_prob:
            chosen.append(int(rng.choice(nxt)))
        else:
            chosen.append(int(rng.choice(np.setdiff1d(np.arange(config.n_topics), chosen))))
    return np.asarray(chosen, np.int64)


def _user_history(config, rng, n, world, sampler):
    """One user's preferred topics and lifelong history (module docstring, "The world")."""
    T, tpc = config.n_topics, config.topics_per_category
    preferred = _preferred_chain(config, rng, world)
    n_pref = len(preferred)
    others = np.setdiff1d(np.arange(T), preferred)
    bounds = np.concatenate([[0.0], np.sort(rng.random(n_pref - 1)), [1.0]])
    starts, ends = bounds[:-1] - config.phase_overlap, bounds[1:] + config.phase_overlap
    ends[-1] = np.inf
    late_negative = (bounds[1:] < 1.0) & (rng.random(n_pref) < config.late_negative_prob)
    dies_at = np.where(late_negative, ends, np.inf)
    intensity = rng.random(n_pref)
    n_fav = rng.integers(2, max(config.favorites_per_topic, 2) + 1, n_pref)
    favorites = [_draw_items(rng, np.full(k, c), sampler) for k, c in zip(n_fav, preferred)]

    # Sessions: sizes 1 + Poisson, cut to n behaviors; start times uniform over the span.
    sizes = 1 + rng.poisson(config.session_mean_length - 1.0, int(2 * n / config.session_mean_length) + 2)
    while sizes.sum() < n:
        sizes = np.concatenate([sizes, 1 + rng.poisson(config.session_mean_length - 1.0, len(sizes))])
    session = np.searchsorted(np.cumsum(sizes), np.arange(n), side="right")
    n_sessions = int(session[-1]) + 1
    frac_s = np.sort(rng.random(n_sessions))
    gaps = rng.exponential(config.session_gap_s, n)
    first = np.r_[True, session[1:] != session[:-1]]
    gaps[first] = 0.0
    csum = np.cumsum(gaps)
    offset = np.floor(csum - csum[np.flatnonzero(first)][session]).astype(np.int64)
    span_s = config.time_span_days * spec_lib.SECONDS_PER_DAY
    # Sessions never overlap: a session starts after the previous one ends (a running max), so
    # time order is position order and a session's funnel stays contiguous.
    base = np.floor(frac_s * span_s).astype(np.int64)
    length_s = np.zeros(n_sessions, np.int64)
    np.maximum.at(length_s, session, offset + 1)
    before = np.concatenate([[0], np.cumsum(length_s)[:-1]])
    base = before + np.maximum.accumulate(base - before)
    ts = np.minimum(config.start_timestamp + base[session] + offset, config.start_timestamp + span_s - 1)

    # Session topic: noise, revisit of an alive preferred topic, or the active phase's topic.
    u = rng.random(n_sessions)
    is_noise_s = u < config.noise_topic_prob
    is_revisit_s = ~is_noise_s & (u < config.noise_topic_prob + config.revisit_prob)
    active = (frac_s[:, None] >= starts[None, :]) & (frac_s[:, None] < ends[None, :])
    alive = frac_s[:, None] < dies_at[None, :]
    k_s = np.where(is_revisit_s, pick_allowed(rng, alive), pick_allowed(rng, active & alive))
    topic_s = np.where(is_noise_s, others[rng.integers(0, len(others), n_sessions)], preferred[k_s])
    is_noise, k = is_noise_s[session], k_s[session]
    topic = topic_s[session]
    sibling = rng.random(n) < config.session_sibling_prob
    sib_topic = (topic // tpc) * tpc + (topic % tpc + rng.integers(1, tpc, n)) % tpc if tpc > 1 else topic
    # A topic closed by a late negative is never revisited, not even through a sibling spill:
    # no spill onto it after its last own behavior (which becomes the negative below).
    for j in np.flatnonzero(late_negative):
        own = np.flatnonzero(~is_noise & ~sibling & (k == j))
        if own.size:
            sibling[own[-1] + 1:] &= sib_topic[own[-1] + 1:] != preferred[j]
    topic = np.where(sibling, sib_topic, topic)
    in_pref = ~is_noise & ~sibling

    item = _draw_items(rng, topic, sampler)
    use_fav = in_pref & (rng.random(n) < config.favorite_prob)
    for j in range(n_pref):
        rows = np.flatnonzero(use_fav & (k == j))
        item[rows] = favorites[j][rng.integers(0, n_fav[j], rows.size)]
    level = np.where(is_noise, 0.0, intensity[k] * np.where(sibling, 0.5, 1.0))
    btype = draw_types(rng, level)
    btype[rng.random(n) < config.negative_prob] = NEGATIVE
    # Funnels: a session's types run up the funnel (stable sort by stage inside each session).
    order = np.lexsort((_FUNNEL_STAGE[btype], session))
    btype = btype[order]
    for j in np.flatnonzero(late_negative):
        rows = np.flatnonzero(in_pref & (k == j))
        if rows.size:
            btype[rows[-1]] = NEGATIVE
    duration = DURATION_MEDIAN_S[btype] * np.exp(rng.normal(0.0, 0.7, n))
    quantity = 1 + rng.poisson(0.3, n)
    amount = np.where(btype == ORDER, sampler["price"][item] * quantity, 0.0).astype(np.float32)
    return preferred, np.maximum(starts, 0.0), item, btype, ts, duration, amount


def _requests(config, rng, world, sampler, preferred, phase_start, item, ts, lo, hi, m):
    """``m`` request times in ``[lo, hi)`` of the span and their targets (module docstring)."""
    span_s = config.time_span_days * spec_lib.SECONDS_PER_DAY
    lo_ts = config.start_timestamp + int(np.floor(lo * span_s))
    hi_ts = config.start_timestamp + int(np.floor(hi * span_s))
    t_req = lo_ts + np.floor(rng.random(m) * (hi_ts - lo_ts)).astype(np.int64)
    window = np.flatnonzero((ts >= lo_ts) & (ts < hi_ts))
    anchored = rng.random(m) < config.in_session_prob
    if window.size:
        anchor = ts[window[rng.integers(0, window.size, m)]]
        delay = np.floor(rng.uniform(30.0, config.session_request_max_s, m)).astype(np.int64)
        t_req = np.where(anchored, np.minimum(anchor + delay, hi_ts - 1), t_req)
    t_req = np.sort(t_req)
    k = np.searchsorted(ts, t_req, side="left")  # behaviors strictly before each request

    tpc = config.topics_per_category
    topic_of = world.topic
    kind = rng.choice(len(TARGET_KINDS), m, p=np.asarray(config.target_mix, np.float64))
    # A preferred topic whose phase has begun by the request (a later phase is the user's future).
    frac_req = (t_req - config.start_timestamp) / span_s
    begun = phase_start[None, :] <= frac_req[:, None]
    own_topic = preferred[pick_allowed(rng, begun)]
    target_topic = np.where(rng.random(m) < 0.5, own_topic, rng.integers(0, config.n_topics, m))
    last = np.maximum(k - 1, 0)
    has_past = k > 0
    # session: the topic of the latest behavior (or a sibling of it) when it is recent.
    in_session = has_past & ((t_req - ts[last]) <= config.truth.session_window_s)
    latest_topic = topic_of[item[last]]
    sib = (latest_topic // tpc) * tpc + (latest_topic % tpc + rng.integers(1, max(tpc, 2), m)) % tpc
    session_topic = np.where(rng.random(m) < 0.7, latest_topic, sib)
    target_topic = np.where((kind == 0) & in_session, session_topic, target_topic)
    # next: a successor of a recently engaged topic (one of the last 200 behaviors).
    recent = np.maximum(k - 1 - rng.integers(0, 200, m), 0)
    successor = world.successors[topic_of[item[recent]], rng.integers(0, world.successors.shape[1], m)]
    target_topic = np.where((kind == 1) & has_past, successor, target_topic)
    target_topic = np.where(kind == 3, own_topic, target_topic)
    target_topic = np.where(kind == 4, rng.integers(0, config.n_topics, m), target_topic)
    target = _draw_items(rng, target_topic, sampler)
    # repeat: an item the user engaged with before.
    past = np.floor(rng.random(m) * k).astype(np.int64)
    target = np.where((kind == 2) & has_past, item[np.minimum(past, len(item) - 1)], target)
    return t_req, target.astype(np.int64)


def generate(config: SyntheticConfig) -> SyntheticData:
    """Generate the world, lifelong histories and time-split train/test examples.

    Args:
      config: sizes, knobs and seed (``SyntheticConfig.preset("small")`` etc.).

    Returns:
      A ``SyntheticData`` (``world`` set); identical for identical configs.
    """
    rng = np.random.default_rng(config.seed)
    spec = spec_lib.FeatureSpec(n_items=config.n_items, n_user_segments=config.n_user_segments,
                                max_history_length=config.max_history_length)
    world, items, sampler = make_world(config, rng)
    lengths = np.exp(rng.uniform(np.log(config.min_history_length), np.log(config.max_history_length + 1),
                                 config.n_users)).astype(np.int64)
    lengths = np.clip(lengths, config.min_history_length, config.max_history_length)
    windows = {"train": (config.train_start_fraction, config.test_cutoff_fraction, config.train_examples_per_user),
               "test": (config.test_cutoff_fraction, 1.0, config.test_examples_per_user)}
    fields = spec.example_record_features(with_true_prob=True)
    columns = {split: {f.name: [] for f in fields} for split in windows}
    histories = []
    for user in range(config.n_users):
        preferred, phase_start, item, btype, ts, duration, amount = _user_history(config, rng, int(lengths[user]),
                                                                                  world, sampler)
        histories.append({
            "user_id": np.int64(user),
            "user_segment": np.int64(rng.integers(0, config.n_user_segments)),
            "hist_item_id": item.astype(np.int64),
            "hist_behavior_type": btype.astype(np.int64),
            "hist_timestamp": ts,
            "hist_duration": duration.astype(np.float32),
            "hist_amount": amount.astype(np.float32),
        })
        reqs = {split: _requests(config, rng, world, sampler, preferred, phase_start, item, ts, lo, hi, m)
                for split, (lo, hi, m) in windows.items()}
        t_all = np.concatenate([r[0] for r in reqs.values()])
        target_all = np.concatenate([r[1] for r in reqs.values()])
        prob_all = sigmoid(true_click_logit(world, item, btype, ts, amount, target_all, t_all, config.truth))
        label_all = (rng.random(len(prob_all)) < prob_all).astype(np.int64)
        start = 0
        for split, (t_req, target) in reqs.items():
            m = len(t_req)
            col = columns[split]
            col["user_id"].append(np.full(m, user, np.int64))
            col["item_id"].append(target)
            col["request_timestamp"].append(t_req)
            col["label"].append(label_all[start:start + m])
            col["true_prob"].append(prob_all[start:start + m])
            start += m
    examples = example_rows(spec, columns)
    return SyntheticData(config=config, spec=spec, items=items, histories=histories, train=examples["train"],
                         test=examples["test"], world=world)
