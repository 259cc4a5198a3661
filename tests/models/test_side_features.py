"""Models with declared features: DIN learns a planted category signal ids alone cannot reach;
context reaches the head; the embedding regularizers (L2, mini-batch aware) are what they claim."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.configs import DINConfig
from tfrec.data.item_table import ItemTable
from tfrec.data.schema import FeatureDef
from tfrec.data.spec import FeatureSpec
from tfrec.metrics import auc
from tfrec.models import DIN
from tfrec.testing import random_features

N_ITEMS, N_CATEGORIES = 2000, 8
CATEGORY = np.arange(N_ITEMS) % N_CATEGORIES
LIKED = np.isin(CATEGORY, [1, 4, 6])  # the planted signal: a click is likely on these categories
SPEC = FeatureSpec(n_items=N_ITEMS, max_history_length=4,
                   item_features=(FeatureDef("category", "categorical", vocab_size=N_CATEGORIES),))
SPEC_IDS_ONLY = FeatureSpec(n_items=N_ITEMS, max_history_length=4)
CONFIG = DINConfig(embedding_dim=8, recent_length=4, attention_units=(8,), mlp_units=(16,))


def _split(items, seed):
    """Examples on ``items`` with p(click) = 0.85 on liked categories, 0.15 otherwise."""
    rng = np.random.default_rng(seed)
    n = len(items)
    features = random_features(SPEC, n, 4, seed=seed)
    features["item_id"] = items
    label = (rng.random(n) < np.where(LIKED[items], 0.85, 0.15)).astype(np.float32)
    return features, label


def _fit_auc(spec, item_table):
    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    # Train and test target items are disjoint: an item id seen at test time was never trained.
    train_items = rng.choice(N_ITEMS // 2, 4000)
    test_items = N_ITEMS // 2 + rng.choice(N_ITEMS // 2, 2000)
    x_train, y_train = _split(train_items, 1)
    x_test, y_test = _split(test_items, 2)
    model = DIN(spec, CONFIG, item_table=item_table)
    model.compile(tf.keras.optimizers.Adam(1e-2), tf.keras.losses.BinaryCrossentropy())
    model.fit(tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(128), epochs=3, verbose=0)
    return auc(y_test, model.predict(x_test, batch_size=500, verbose=0))


def test_din_learns_a_category_signal_item_ids_cannot_reach():
    table = ItemTable.from_columns(SPEC, np.arange(N_ITEMS), {"category": CATEGORY})
    with_category = _fit_auc(SPEC, table)
    ids_only = _fit_auc(SPEC_IDS_ONLY, None)
    assert with_category > 0.8, with_category  # the planted ceiling is 0.85 / 0.15: AUC ~0.85
    assert ids_only < 0.6, ids_only  # unseen ids carry nothing


def test_context_features_reach_the_score():
    spec = FeatureSpec(n_items=10, max_history_length=3,
                       context_features=(FeatureDef("hour", "categorical", vocab_size=24),))
    model = DIN(spec, CONFIG)
    x = random_features(spec, 4, 3, seed=0)
    state = model.encode_user(x)
    candidates = tf.constant([[1, 2]] * 4, tf.int64)
    a = model.score(state, candidates, {"hour": tf.constant([0, 0, 0, 0], tf.int64)}).numpy()
    b = model.score(state, candidates, {"hour": tf.constant([5, 5, 5, 5], tf.int64)}).numpy()
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match=r"score needs the context features \['hour'\]"):
        model.score(state, candidates)


@pytest.mark.parametrize("regularization", ["l2", "mba"])
def test_embedding_penalty_matches_the_formula(regularization):
    spec = FeatureSpec(n_items=6, max_history_length=3)
    freq = np.array([1.0, 2.0, 4.0, 1.0, 8.0, 3.0])
    config = DINConfig(embedding_dim=2, recent_length=3, attention_units=(4,), mlp_units=(4,), embedding_l2=0.5,
                       regularization=regularization)
    model = DIN(spec, config, item_frequency=freq)
    features = {**random_features(spec, 2, 3, seed=0), "item_id": np.array([5, 0]),
                "hist_item_id": np.array([[1, 2, 3], [1, 4, 4]]), "hist_length": np.array([2, 3], np.int32)}
    model(features)
    table = model.item_embedding.id_embedding.embeddings.numpy()
    if regularization == "mba":
        used = [5, 0, 1, 2, 4]  # targets + valid behaviors (item 3 is padding in row 0); each once
        expected = 0.5 * sum((table[j] ** 2).sum() / freq[j] for j in used)
    else:
        tables = [w.numpy() for w in model.trainable_weights if w.name.split("/")[-1].startswith("embeddings")]
        assert len(tables) >= 3  # item ids, behavior types, user segments
        expected = 0.5 * sum((t ** 2).sum() for t in tables)
    np.testing.assert_allclose(model.embedding_penalty(features).numpy(), expected, rtol=1e-5)
    # The penalty is in the training loss only: the model's output (the serving graph) ignores it.
    y = np.zeros(2, np.float32)
    model.compile(loss=tf.keras.losses.BinaryCrossentropy())
    bce = tf.keras.losses.BinaryCrossentropy()(y, model(features)).numpy()
    loss = model.compute_loss((features, tf.constant(y)), training=True)
    np.testing.assert_allclose(loss.numpy(), bce + expected, rtol=1e-5)


def test_every_config_file_loads_into_its_model():
    """pipelines/configs/<model>[-variant].yaml builds that model (din-paper.yaml = DIN as its paper)."""
    from pathlib import Path

    from tfrec import configs as configs_lib
    from tfrec.data.item_content import ItemContent
    from tfrec.models import MODELS
    from pipelines.common import load_yaml_config

    # a categorical item feature for SIM's hard GSU (the other models embed it like any item feature)
    spec = FeatureSpec(n_items=10, max_history_length=3,
                       item_features=(FeatureDef("category", "categorical", vocab_size=3),))
    files = sorted((Path(__file__).resolve().parents[2] / "pipelines" / "configs").glob("*.yaml"))
    assert "din-paper.yaml" in [f.name for f in files]
    for path in files:
        cls = MODELS[path.stem.split("-")[0]]
        config = configs_lib.from_dict(cls.config_class, load_yaml_config(path))
        if cls.uses_item_groups:
            continue  # needs a group table; built with one in tests/models/test_models.py
        kwargs = {}
        if cls.uses_item_content:  # content vectors [10, 4] and 3-level Semantic IDs
            rng = np.random.default_rng(0)
            kwargs["item_content"] = ItemContent.from_arrays(10, vectors=rng.normal(size=(10, 4)),
                                                             codes=rng.integers(0, 3, (10, 3)))
        model = cls(spec, config, **kwargs)
        assert model(random_features(spec, 2, 3)).shape == (2,), path.name
    paper = configs_lib.from_dict(DINConfig, load_yaml_config(files[[f.name for f in files].index("din-paper.yaml")]))
    assert (paper.attention_activation, paper.head_activation, paper.regularization) == ("dice", "dice", "mba")
