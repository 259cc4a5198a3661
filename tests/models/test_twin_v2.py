"""TWIN-V2: the cluster state (shapes, masks, the pipeline path), the GSU against numpy (padding, ties,
fewer than K clusters, no cluster, ln n), deterministic inference, config errors, export parity and
stock ops, a planted task where the old clusters decide the label (beats DIN on the recent ones)."""
import dataclasses
import types

import numpy as np
import pytest
import tensorflow as tf

from tests.models.planted import din_auc, held_out_auc, old_category_recall
from tfrec.configs import TWINV2Config
from tfrec.data.item_content import ItemContent
from tfrec.data.schema import FeatureDef
from tfrec.data.spec import FeatureSpec
from tfrec.export import export_saved_model
from tfrec.export.saved_model import non_stock_ops
from tfrec.models import MODELS, TWINV2
from tfrec.testing import (
    assert_nested_allclose,
    assert_saved_model_matches,
    random_features,
)

N_ITEMS, N, M, K = 30, 12, 6, 3
CATEGORY = np.arange(N_ITEMS) % 3  # item i has category i mod 3
SPEC = FeatureSpec(n_items=N_ITEMS, max_history_length=N,
                   item_features=(FeatureDef("category", "categorical", vocab_size=3),),
                   behavior_features=(FeatureDef("rating", "numeric"),))
_rng = np.random.default_rng(7)
# content vectors: one direction per category + noise, so the clusters follow the categories
CONTENT = ItemContent.from_arrays(N_ITEMS, vectors=np.eye(3)[CATEGORY] + 0.2 * _rng.normal(size=(N_ITEMS, 3)))
CONFIG = TWINV2Config(embedding_dim=8, history_length=N, cluster_size=3, max_clusters=M, max_depth=3,
                      kmeans_iterations=3, max_branching=4, branching_exponent=0.5, gsu_k=K, num_heads=2,
                      key_dim=4, short_term_length=4, attention_units=(8,), mlp_units=(8,))


_TABLE = types.SimpleNamespace(columns={"category": CATEGORY})  # the item table's declared features


def _model(spec=SPEC, **changes):
    tf.keras.utils.set_random_seed(0)
    model = TWINV2(spec, dataclasses.replace(CONFIG, **changes), item_content=CONTENT, item_table=_TABLE)
    model(random_features(spec, 2, N, seed=0))
    return model


@pytest.fixture(scope="module")
def model():
    return _model()


def _numpy(state):
    return {k: v.numpy() for k, v in state.items()}


def test_cluster_state_shapes_masks_and_the_pipeline_path(model):
    features = random_features(SPEC, 4, N, seed=3)
    state = _numpy(model.encode_user(features))
    d = model.item_embedding.output_dim
    expected = {"user_embedding": ((4, 8), np.float32), "recent_behaviors": ((4, 4, d), np.float32),
                "recent_mask": ((4, 4), np.float32), "cluster_item_id": ((4, M), np.int32),
                "cluster_behavior_type": ((4, M), np.int32), "cluster_rating": ((4, M), np.float32),
                "cluster_size": ((4, M), np.float32), "cluster_mask": ((4, M), np.float32)}
    assert {k: (v.shape, v.dtype) for k, v in state.items()} == expected
    lengths = np.minimum(features["hist_length"], N)
    mask, size = state["cluster_mask"], state["cluster_size"]
    assert mask[0].sum() == 0 and size[0].sum() == 0  # row 0: empty history, no cluster
    np.testing.assert_array_equal(size.sum(1), lengths)  # M = 6 holds every cluster of these windows
    assert ((size > 0) == (mask > 0)).all()
    # kept clusters are right-aligned (padding on the left, as the window)
    assert all((np.diff(row) >= 0).all() for row in mask)
    # a cluster's numeric behavior feature is the mean over its members (ratings 1..N: checkable)
    features["hist_rating"] = np.tile(np.arange(1, N + 1, dtype=np.float32), (4, 1))
    state = _numpy(model.encode_user(features))
    clusters = _numpy(model.clustering(model._clustering_inputs(model._window(features))))
    window = model._window(features)["rating"].numpy()
    for u in range(4):
        for slot in np.flatnonzero(clusters["mask"][u]):
            members = clusters["assignment"][u] == slot
            np.testing.assert_allclose(state["cluster_rating"][u, slot], window[u, members].mean(), rtol=1e-6)
            rep = clusters["representative"][u, slot]
            items = model._window(features)["item_id"].numpy()
            assert state["cluster_item_id"][u, slot] == items[u, rep]
    # the input-pipeline path (numpy clustering, once per example) gives the same tensors
    precomputed = model.precompute_clusters(features)
    assert_nested_allclose(_numpy(model.encode_user({**features, **precomputed})), state, atol=0.0)


def _gsu_state(items, sizes):
    """A cluster state: ``items`` / ``sizes`` per user ``[B, M]`` (size 0 = empty slot)."""
    sizes = np.asarray(sizes, np.float32)
    return {"cluster_item_id": tf.constant(items, tf.int32), "cluster_behavior_type": tf.zeros(sizes.shape, tf.int32),
            "cluster_rating": tf.zeros(sizes.shape), "cluster_size": tf.constant(sizes),
            "cluster_mask": tf.constant((sizes > 0).astype(np.float32))}


def _reference_gsu(model, state, candidates, k):
    """numpy: per head ``alpha' = (W_q e_t)·(W_k e_j) / sqrt(d_h) + w·c_j + ln n_j`` over the valid clusters;
    the K best by the terms the config puts in retrieval (ties to the larger slot), best first (fewer
    valid clusters than K leave masked slots); ``softmax_K(alpha')`` over them and ``sum W_v x_j`` per
    head. Returns ``(positions, valid, output)``."""
    att, cfg = model.attention, model.config
    h, dh = att.num_heads, att.key_dim
    q = model.item_embedding(candidates).numpy() @ att.w_q.kernel.numpy()  # [B, C, H*dh]
    keys = model.item_embedding(state["cluster_item_id"]).numpy() @ att.w_k.kernel.numpy()  # [B, M, H*dh]
    b, c, m = q.shape[0], q.shape[1], keys.shape[1]
    logits = np.einsum("bchd,bmhd->bchm", q.reshape(b, c, h, dh), keys.reshape(b, m, h, dh)) / np.sqrt(dh)
    sizes = state["cluster_size"].numpy()
    size_term = np.log(np.maximum(sizes, 1.0))[:, None, None, :] if cfg.cluster_aware else 0.0
    tokens = model.behavior_tokens({f"hist_{f}": state[f"cluster_{f}"] for f in model.behavior_fields}).numpy()
    cross = (tokens - model.item_embedding(state["cluster_item_id"]).numpy()) @ model.cross.kernel.numpy()
    cross_term = cross[:, None, None, :, 0]  # TWIN's cross bias
    full = logits + size_term + cross_term
    rank = logits + (size_term if cfg.size_in_retrieval else 0.0) + (cross_term if cfg.cross_in_retrieval else 0.0)
    values = tokens @ att.w_v.kernel.numpy()  # [B, M, d]
    dv = values.shape[-1] // h
    positions = np.zeros((b, c, h, k), np.int64)
    valid = np.zeros((b, c, h, k), np.float32)
    output = np.zeros((b, c, values.shape[-1]), np.float32)
    for i in range(b):
        slots = np.flatnonzero(sizes[i] > 0)
        for j in range(c):
            for head in range(h):
                best = sorted(slots, key=lambda s: (-rank[i, j, head, s], -s))[:k]
                positions[i, j, head, :len(best)] = best
                valid[i, j, head, :len(best)] = 1.0
                if best:
                    z = full[i, j, head, best]
                    w = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
                    output[i, j, head * dv:(head + 1) * dv] = w @ values[i, best, head * dv:(head + 1) * dv]
    return positions, valid, output


def test_gsu_matches_numpy_with_padding_ties_few_and_no_clusters(model):
    items = [[0, 5, 9, 5, 12, 7],  # slot 0 empty; slots 1 and 3: same item, size and type (a tie), the largest
             [0, 0, 0, 0, 4, 8],  # 2 clusters < K
             [0, 0, 0, 0, 0, 0]]  # no cluster at all
    sizes = [[0, 9, 3, 9, 2, 4], [0, 0, 0, 0, 2, 1], [0, 0, 0, 0, 0, 0]]
    state = _gsu_state(items, sizes)
    state["cluster_behavior_type"] = tf.constant([[0, 2, 1, 2, 4, 3]] * 3, tf.int32)  # varied cross terms
    candidates = tf.constant([[1, 5], [2, 3], [4, 6]], tf.int64)
    out = model.attend(state, model.item_embedding(candidates))
    d, h = model.item_embedding.output_dim, CONFIG.num_heads
    assert {k: tuple(v.shape) for k, v in out.items()} == {"output": (3, 2, d), "positions": (3, 2, h, K),
                                                           "mask": (3, 2, h, K)}
    positions, valid, output = _reference_gsu(model, state, candidates, K)
    np.testing.assert_array_equal(out["mask"].numpy(), valid)
    np.testing.assert_array_equal(np.where(valid > 0, out["positions"].numpy(), 0), positions)
    np.testing.assert_allclose(out["output"].numpy(), output, atol=1e-5)  # softmax over alpha + ln n
    for row in out["positions"].numpy()[0].reshape(-1, K):  # the tie is retrieved: slot 3 (more recent) first
        assert 1 in row and 3 in row and list(row).index(3) < list(row).index(1), row
    assert valid[1].sum(-1).max() == 2 and valid[2].sum() == 0
    np.testing.assert_array_equal(out["output"].numpy()[2], 0.0)  # no cluster: u = 0


def test_cluster_size_drives_retrieval_and_attention():
    """Two clusters of the same item: ln n puts the 5-behavior one first; without the cluster-aware term
    the tie goes to the more recent slot; ``size_in_retrieval=False`` keeps ln n in the attention only.
    With distinct items, each variant's output matches numpy (the ln n term in the softmax or not)."""
    state = _gsu_state([[0, 0, 0, 0, 6, 6]], [[0, 0, 0, 0, 5, 1]])
    mixed = _gsu_state([[0, 2, 9, 4, 6, 7]], [[0, 7, 1, 3, 5, 1]])
    query = tf.constant([[3, 8]], tf.int64)
    first = {}
    for name, changes in (("aware", {}), ("plain", {"cluster_aware": False}),
                          ("attention_only", {"size_in_retrieval": False})):
        m = _model(**changes)
        m.cross.kernel.assign(np.zeros(m.cross.kernel.shape))  # the size term alone
        out = m.attend(state, m.item_embedding(query))
        first[name] = out["positions"].numpy()[0, 0, :, 0]
        got = m.attend(mixed, m.item_embedding(query))
        positions, valid, output = _reference_gsu(m, mixed, query, K)
        np.testing.assert_array_equal(np.where(valid > 0, got["positions"].numpy(), 0), positions)
        np.testing.assert_allclose(got["output"].numpy(), output, atol=1e-5)
    assert (first["aware"] == 4).all() and (first["plain"] == 5).all() and (first["attention_only"] == 5).all()


def test_inference_is_deterministic(model):
    features = random_features(SPEC, 5, N, seed=11)
    dropout = _model(dropout=0.5)
    for m in (model, dropout):
        a, b = m(features, training=False).numpy(), m(features, training=False).numpy()
        np.testing.assert_array_equal(a, b)
        state = m.encode_user(features)
        np.testing.assert_allclose(m.score(state, features["item_id"][:, None]).numpy()[:, 0], a, atol=1e-6)
    # rebuilt from its config (tables and weights from the original): the same outputs
    rebuilt = TWINV2.from_config(model.get_config())
    rebuilt(features)
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_array_equal(rebuilt(features).numpy(), model(features).numpy())


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="group_feature='genre'"):
        TWINV2(SPEC, dataclasses.replace(CONFIG, group_feature="genre"), item_content=CONTENT)
    with pytest.raises(ValueError, match="group_boundaries"):
        TWINV2(SPEC, dataclasses.replace(CONFIG, group_boundaries=(1.0,)), item_content=CONTENT)
    with pytest.raises(ValueError, match="group_boundaries"):
        TWINV2Config(group_feature="duration", group_boundaries=(2.0, 1.0))
    with pytest.raises(ValueError, match="group_feature='rating' is numeric: give group_boundaries"):
        TWINV2(SPEC, dataclasses.replace(CONFIG, group_feature="rating"), item_content=CONTENT)
    with pytest.raises(ValueError, match="branching_exponent"):
        TWINV2Config(branching_exponent=1.5)
    with pytest.raises(ValueError, match="cluster_size"):
        TWINV2Config(cluster_size=0)
    with pytest.raises(ValueError, match="content vectors"):
        TWINV2(SPEC, CONFIG)
    # a numeric group key, bucketed (the paper's play-completion ratio)
    m = TWINV2(SPEC, dataclasses.replace(CONFIG, group_feature="duration", group_boundaries=(1.0, 10.0)),
               item_content=CONTENT)
    assert m.num_groups == 3 and m(random_features(SPEC, 2, N)).shape == (2,)
    assert MODELS["twinv2"] is TWINV2


def test_export_round_trip(tmp_path):
    """One export (each signature traces the clustering: seconds), with a bucketed numeric group key and
    projected content vectors (``cluster_dim`` 2 < 3: the SavedModel carries the projected table)."""
    model = _model(group_feature="rating", group_boundaries=(0.5,), max_depth=2, cluster_dim=2)
    features = random_features(SPEC, 3, N, seed=4)
    version = export_saved_model(model, SPEC, tmp_path, "twinv2")
    assert_saved_model_matches(model, SPEC, version, features, np.array([[0, 1, 2, 5]] * 3))
    assert non_stock_ops(version) == []  # real TF Serving can load it (Bucketize, segment ops, TopKV2)


def test_twinv2_learns_the_old_clusters():
    """``planted.old_category_recall``: the 8 oldest behaviors (category c) decide the label, the 4 most
    recent never do. TWIN-V2's clusters (one group: k-means alone forms them; content follows the
    category) keep the old interest and its scorer retrieves it (K = 2 per head); DIN over the 4 most
    recent cannot."""
    spec = FeatureSpec(n_items=N_ITEMS, max_history_length=N,
                       item_features=(FeatureDef("category", "categorical", vocab_size=3),))
    features, label = old_category_recall(spec, N_ITEMS)
    twin_auc = held_out_auc(_model(spec, short_term_length=0, gsu_k=2, group_feature=""), features, label)
    baseline = din_auc(spec, _TABLE, N_ITEMS)
    print(f"TWIN-V2 {twin_auc:.3f}, DIN (4 recent) {baseline:.3f}")
    assert twin_auc > 0.9 and baseline < 0.7 and twin_auc - baseline > 0.25, (twin_auc, baseline)


def test_wide_content_vectors_are_clustered_on_their_principal_directions(tmp_path):
    """Content vectors wider than ``cluster_dim`` (3 > 2 here): the clustering reads their projection
    onto the top principal directions (against numpy's SVD, up to each column's sign, which the
    largest entry fixes positive); both clustering paths read it; a model rebuilt from its config
    (zero tables) restores it from the weights or a checkpoint, and refuses a checkpoint without it
    (written before the projection existed). Narrower vectors are clustered as they are."""
    from tfrec.data.item_content import normalize_rows
    from tfrec.grouping.hierarchical_clustering import principal_directions

    assert _model().cluster_content is None  # 3-d vectors, cluster_dim 32
    model = _model(cluster_dim=2)
    assert model.get_config()["config"]["cluster_dim"] == 2 and "cluster_dim" not in model.get_config()
    # a model saved when cluster_dim was a constructor argument (its config beside the model config)
    old = TWINV2(SPEC, CONFIG, cluster_dim=2, item_content=CONTENT, item_table=_TABLE)
    assert old.config.cluster_dim == 2 and old.cluster_dim == 2
    table = normalize_rows(CONTENT.vectors)  # the content table's rows (the 3-d table itself goes unused)
    projected = model.cluster_content.tables["cluster_content"].numpy()
    assert projected.shape == (N_ITEMS + 1, 2) and not projected[-1].any()  # the unknown item: zeros
    _, _, vt = np.linalg.svd(table - table.mean(0))
    expected = table @ vt[:2].T
    np.testing.assert_allclose(np.abs(projected[:-1]), np.abs(expected), atol=1e-5)
    directions = principal_directions(table, 2)
    np.testing.assert_allclose(directions.T @ directions, np.eye(2), atol=1e-6)
    assert (directions[np.abs(directions).argmax(0), [0, 1]] > 0).all()
    assert not principal_directions(np.zeros((4, 3)), 2).any()  # no item given: zeros
    features = random_features(SPEC, 4, N, seed=3)
    window = model._window(features)
    vectors = model._clustering_inputs(window)["vectors"].numpy()
    np.testing.assert_array_equal(vectors, projected[np.where(window["item_id"].numpy() < 0, N_ITEMS,
                                                              window["item_id"].numpy())])
    state = _numpy(model.encode_user(features))
    assert_nested_allclose(_numpy(model.encode_user({**features, **model.precompute_clusters(features)})), state,
                           atol=0.0)
    rebuilt = TWINV2.from_config(model.get_config())
    rebuilt(features)
    assert not rebuilt.cluster_content.tables["cluster_content"].numpy().any()
    rebuilt.set_weights(model.get_weights())
    assert_nested_allclose(_numpy(rebuilt.encode_user(features)), state, atol=0.0)
    model.save_weights(str(tmp_path / "new" / "ckpt"))
    restored = TWINV2.from_config(model.get_config())
    restored(features)
    restored.load_weights(str(tmp_path / "new" / "ckpt"))
    assert_nested_allclose(_numpy(restored.encode_user(features)), state, atol=0.0)
    old = _model()  # the layout before the projection: no cluster_content table in its checkpoint
    old.save_weights(str(tmp_path / "old" / "ckpt"))
    fresh = TWINV2.from_config(model.get_config())  # as tfrec.training.load_trained rebuilds a run
    fresh(features)
    with pytest.raises(ValueError, match="no projected cluster_content table.*retrain"):
        fresh.load_weights(str(tmp_path / "old" / "ckpt")).expect_partial()
