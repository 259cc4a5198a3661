"""SIREN: both GSUs against numpy, the ESU's switches (Table 2), the bucket range from the training
data, clear errors without item content, and learning a planted similarity signal."""
import dataclasses
import itertools

import numpy as np
import pytest
import tensorflow as tf

from tests.models.test_models import CONTENT, ORDER, SIREN_CONFIG, SPEC, make_siren
from tfrec.configs import SIRENConfig
from tfrec.data.item_content import ItemContent, normalize_rows
from tfrec.data.spec import FeatureSpec
from tfrec.metrics import auc
from tfrec.models import SIREN
from tfrec.testing import random_features


def _reference_top_k(scores, eligible, k):
    """Best first, ties to the larger position; -1 for empty slots."""
    out = np.full(k, -1)
    idx = [i for i in range(len(scores)) if eligible[i]]
    idx.sort(key=lambda i: (-scores[i], -i))
    out[:min(k, len(idx))] = idx[:k]
    return out


def _retrieved(model, state, candidates):
    r = model.retrieve(state, tf.constant(candidates, tf.int64))
    pos, mask = r["positions"].numpy(), r["mask"].numpy()
    return np.where(mask > 0, pos, -1), r


@pytest.mark.parametrize("gsu", ["soft", "hard"])
def test_gsu_matches_a_numpy_reference(gsu):
    model = make_siren(gsu=gsu)
    features = random_features(SPEC, 6, 16, seed=1)
    state = {k: v.numpy() for k, v in model.encode_user(features).items()}
    candidates = np.random.default_rng(2).integers(0, SPEC.n_items, (6, 3))
    candidates[0, 0] = SPEC.n_items + 1  # unknown: zero vector, no code
    got, r = _retrieved(model, state, candidates)
    vectors = np.concatenate([normalize_rows(CONTENT.vectors), np.zeros((1, 6), np.float32)])
    level1 = np.concatenate([CONTENT.codes[:, 0], [-1]])
    row = lambda ids: np.where((ids >= 0) & (ids < SPEC.n_items), ids, SPEC.n_items)  # noqa: E731
    for b, c in itertools.product(range(6), range(3)):
        hist = row(state["history_item_id"][b])
        valid = state["history_mask"][b] > 0
        t = row(candidates[b, c])
        cosine = vectors[hist] @ vectors[t]
        if gsu == "soft":
            expected = _reference_top_k(cosine, valid, SIREN_CONFIG.gsu_k)
        else:  # the K most recent behaviors sharing the target's level-1 code
            expected = _reference_top_k(np.arange(len(hist)), valid & (level1[hist] == level1[t]) & (level1[t] >= 0),
                                        SIREN_CONFIG.gsu_k)
        np.testing.assert_array_equal(got[b, c] >= 0, expected >= 0, err_msg=f"user {b} candidate {c}")
        kept = expected >= 0
        differ = kept & (got[b, c] != expected)
        if gsu == "soft":  # a repeated item ties with itself, but numpy's mat-vec can round identical rows
            # 1 ulp apart on some CPUs (AMD EPYC: 0.8329486 vs 0.83294857), which flips the reference's
            # tie-break; a swap of positions whose cosines agree to 1e-6 is allowed, any other difference fails
            np.testing.assert_allclose(cosine[got[b, c][differ]], cosine[expected[differ]], atol=1e-6,
                                       err_msg=f"user {b} candidate {c}: {got[b, c]} vs {expected}")
            assert len(set(got[b, c][kept])) == kept.sum() and valid[got[b, c][kept]].all()
        else:
            np.testing.assert_array_equal(got[b, c], expected, err_msg=f"user {b} candidate {c}")
        sims = r["similarity"].numpy()[b, c]
        np.testing.assert_allclose(sims[kept], cosine[got[b, c][kept]], atol=1e-5)
    if gsu == "hard":
        assert (got[0, 0] == -1).all()  # an unknown candidate has no code: nothing retrieved


def test_the_window_keeps_the_most_recent_behaviors():
    model = make_siren()
    features = random_features(SPEC, 4, 16, seed=3)
    features["hist_length"] = np.array([0, 16, 5, 13], np.int32)
    state = model.encode_user(features)
    for b, n in enumerate(features["hist_length"]):
        kept = features["hist_item_id"][b, max(n - 12, 0):n]
        np.testing.assert_array_equal(state["history_item_id"][b, 12 - len(kept):], kept)
        np.testing.assert_array_equal(state["history_mask"][b], [0] * (12 - len(kept)) + [1] * len(kept))


def test_the_score_reads_only_the_retrieved_behaviors():
    model = make_siren(short_term_length=0)
    features = random_features(SPEC, 4, 16, seed=4)
    features["hist_length"] = np.full(4, 16, np.int32)
    state = {k: v.numpy() for k, v in model.encode_user(features).items()}
    candidates = np.array([[3], [8], [17], [30]])
    base = model.score(state, candidates).numpy()
    got, _ = _retrieved(model, state, candidates)
    retrieved = np.zeros_like(state["history_mask"], bool)
    for b in range(4):
        retrieved[b, got[b, 0][got[b, 0] >= 0]] = True
    # the behavior type does not move the soft GSU: changing it where nothing is retrieved changes nothing ...
    other = dict(state, history_behavior_type=np.where(retrieved, state["history_behavior_type"], ORDER).astype(np.int32))
    np.testing.assert_allclose(model.score(other, candidates).numpy(), base, atol=1e-6)
    # ... and changes the score where it is
    flipped = dict(state, history_behavior_type=np.where(
        retrieved, (state["history_behavior_type"] + 1) % 6, state["history_behavior_type"]).astype(np.int32))
    assert np.abs(model.score(flipped, candidates).numpy() - base).min() > 1e-6


@pytest.mark.parametrize("semantic_id, buckets, ti", list(itertools.product([False, True], repeat=3)))
def test_every_table_2_switch_builds_and_scores(semantic_id, buckets, ti):
    # Table 2: base target attention (all off), + SemID, + SimBucket, + both, + TI.
    model = make_siren(semantic_id=semantic_id, similarity_buckets=buckets, target_interaction=ti)
    features = random_features(SPEC, 3, 10, seed=5)
    p = model(features).numpy()
    assert p.shape == (3,) and np.all((p > 0) & (p < 1))
    d_item = model.item_embedding.output_dim
    assert model.h_dim == d_item + (3 * 4 if semantic_id else 0)  # K = M = 3 prefixes x semantic_id_dim 4
    assert (model.prefix_embedding is not None) == semantic_id and (model.buckets is not None) == buckets
    # the head reads [item, short-term, user, (e_sem_t), u]: all of h_t and u (eq. 13)
    assert model.head._hidden[0].kernel.shape[0] == d_item + d_item + 8 + (12 if semantic_id else 0) + model.h_dim


def test_target_interaction_is_the_elementwise_product_with_h_t():
    with_ti, without = make_siren(), make_siren(target_interaction=False)
    features = random_features(SPEC, 3, 10, seed=6)
    with_ti(features), without(features)
    without.set_weights(with_ti.get_weights())
    state = with_ti.encode_user(features)
    cands = tf.constant([[1, 2], [3, 4], [5, 6]], tf.int64)
    item_emb = with_ti.item_embedding(cands)
    u_ti = with_ti.head_inputs(state, cands, item_emb)[-1]
    parts = without.head_inputs(state, cands, item_emb)
    h_t = tf.concat([item_emb, parts[0]], -1)
    np.testing.assert_allclose(u_ti.numpy(), (parts[-1] * h_t).numpy(), atol=1e-6)


def test_what_each_gsu_needs_from_the_item_content():
    vectors_only = ItemContent(vectors=CONTENT.vectors)
    codes_only = ItemContent(codes=CONTENT.codes, codebook_size=4)
    make_siren(content=vectors_only, semantic_id=False)(random_features(SPEC, 2, 4))  # soft GSU, buckets
    make_siren(content=codes_only, gsu="hard", similarity_buckets=False)(random_features(SPEC, 2, 4))
    with pytest.raises(ValueError, match="semantic-ids"):
        make_siren(content=vectors_only)
    with pytest.raises(ValueError, match="items.npz"):
        make_siren(content=codes_only, gsu="hard")
    with pytest.raises(ValueError, match="prefix_depth=4 exceeds the 3"):
        make_siren(prefix_depth=4)
    with pytest.raises(ValueError, match="gsu must be one of"):
        SIRENConfig(gsu="fuzzy")
    with pytest.raises(ValueError, match="num_heads"):
        make_siren(num_heads=7)
    assert make_siren(prefix_depth=2).prefix_embedding.output_dim == 2 * 4


def test_adapt_sets_the_bucket_range_to_quantiles_of_the_retrieved_similarities():
    model = make_siren(similarity_quantiles=(0.1, 0.9))
    batches = [random_features(SPEC, 8, 16, seed=s) for s in range(3)]
    ds = tf.data.Dataset.from_tensor_slices(
        ({k: np.concatenate([b[k] for b in batches]) for k in batches[0]}, np.zeros(24, np.float32))).batch(8)
    lo, hi = model.adapt(ds)
    sims = []
    for b in batches:
        state = model.encode_user(b)
        r = model.retrieve(state, tf.constant(b["item_id"][:, None]))
        sims.append(r["similarity"].numpy()[r["mask"].numpy() > 0])
    np.testing.assert_allclose([lo, hi], np.quantile(np.concatenate(sims), [0.1, 0.9]), atol=1e-5)
    np.testing.assert_allclose(model.buckets.similarity_range.numpy(), [lo, hi], atol=1e-6)
    assert make_siren(similarity_buckets=False).adapt(ds) is None


# Planted similarity signal: items in 8 content clusters (level-1 code = cluster); a click is likely
# iff the user ordered an item of the target's cluster somewhere in a 30-behavior history. The GSU
# must find the behaviors similar to the target, the ESU must read their behavior type.
N_ITEMS, N_CLUSTERS, LENGTH = 80, 8, 30
PLANTED_SPEC = FeatureSpec(n_items=N_ITEMS, max_history_length=LENGTH)
_r = np.random.default_rng(7)
CLUSTER = np.arange(N_ITEMS) % N_CLUSTERS
PLANTED_CONTENT = ItemContent.from_arrays(
    N_ITEMS, vectors=np.eye(N_CLUSTERS)[CLUSTER] + 0.2 * _r.normal(size=(N_ITEMS, N_CLUSTERS)),
    codes=np.stack([CLUSTER, np.arange(N_ITEMS) % 5, np.arange(N_ITEMS) % 3], axis=1), codebook_size=8)


def planted(n, seed):
    rng = np.random.default_rng(seed)
    features = random_features(PLANTED_SPEC, n, LENGTH, seed=seed)
    features["hist_length"] = np.full(n, LENGTH, np.int32)
    features["hist_behavior_type"] = np.where(rng.random((n, LENGTH)) < 0.06, ORDER,
                                              rng.integers(0, ORDER, (n, LENGTH))).astype(np.int64)
    same = CLUSTER[features["hist_item_id"]] == CLUSTER[features["item_id"]][:, None]
    liked = (same & (features["hist_behavior_type"] == ORDER)).any(axis=1)
    return features, (rng.random(n) < np.where(liked, 0.9, 0.1)).astype(np.float32)


@pytest.mark.parametrize("gsu", ["soft", "hard"])
def test_siren_learns_a_planted_similarity_signal(gsu):
    tf.keras.utils.set_random_seed(0)
    config = dataclasses.replace(SIREN_CONFIG, history_length=LENGTH, gsu=gsu, gsu_k=6, short_term_length=0)
    model = SIREN(PLANTED_SPEC, config, item_content=PLANTED_CONTENT)
    x_train, y_train = planted(3000, seed=1)
    x_test, y_test = planted(1000, seed=2)
    assert 0.25 < y_train.mean() < 0.6
    model.adapt(tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(256))
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    model.fit(x_train, y_train, batch_size=64, epochs=4, verbose=0)
    held_out = auc(y_test, model.predict(x_test, batch_size=500, verbose=0))
    same = CLUSTER[x_test["hist_item_id"]] == CLUSTER[x_test["item_id"]][:, None]
    ceiling = auc(y_test, (same & (x_test["hist_behavior_type"] == ORDER)).any(axis=1))  # 0.79 (label noise)
    # measured: soft 0.748, hard 0.775; a model that cannot find or read the similar behaviors sits at 0.5
    assert held_out > 0.7 and held_out > ceiling - 0.07, (held_out, ceiling)


def test_out_of_vocabulary_history_ids_are_unknown_not_wrapped():
    model = make_siren()
    features = random_features(SPEC, 2, 6, seed=9)
    features["hist_length"] = np.array([6, 6], np.int32)
    huge = dict(features, hist_item_id=features["hist_item_id"].copy())
    huge["hist_item_id"][:, 0] = 2**32 + 5  # would wrap to item 5 in int32
    unknown = dict(features, hist_item_id=features["hist_item_id"].copy())
    unknown["hist_item_id"][:, 0] = SPEC.n_items + 1
    state = model.encode_user(huge)
    assert (state["history_item_id"].numpy()[:, -6] == -1).all()
    np.testing.assert_allclose(model(huge).numpy(), model(unknown).numpy(), atol=1e-6)


def test_a_behavior_feature_named_mask_is_refused():
    from tfrec.data.schema import FeatureDef

    spec = FeatureSpec(n_items=40, max_history_length=16,
                       behavior_features=(FeatureDef("mask", "categorical", vocab_size=3),))
    with pytest.raises(ValueError, match="history_mask"):
        SIREN(spec, SIREN_CONFIG, item_content=CONTENT)
