"""Planted data where lifelong retrieval matters (shared by the two-stage baselines' learning tests)."""
import numpy as np
import tensorflow as tf

from tfrec.testing import random_features


def old_category_recall(spec, n_items: int, n: int = 512, seed: int = 0):
    """Item i has category ``i % 3``. Each user has 12 behaviors: the 8 oldest are 3 of category c and
    5 of another, r, in random order; the 4 most recent are of r too. The target is of c (label 1) or
    of the third category, absent from the history (label 0). The recent behaviors never tell: a
    model must find the 3 old ones by the target's category (or an embedding that learned it), a
    quarter of the window; DIN over the 4 most recent cannot. Returns ``(features, labels)`` (all
    behaviors valid; an item's category is ``item % 3``)."""
    rng = np.random.default_rng(seed)
    features = random_features(spec, n, 12, seed=seed + 5)
    old_cat = rng.integers(0, 3, n)
    recent_cat = (old_cat + rng.integers(1, 3, n)) % 3
    other_cat = 3 - old_cat - recent_cat
    label = rng.random(n) < 0.5
    target_cat = np.where(label, old_cat, other_cat)

    def items_of(cat, size):  # items i with i % 3 == cat
        return cat[:, None] + 3 * rng.integers(0, n_items // 3, (n, size))

    old = np.concatenate([items_of(old_cat, 3), items_of(recent_cat, 5)], axis=1)
    old = np.take_along_axis(old, rng.random((n, 8)).argsort(axis=1), axis=1)  # c's 3 anywhere among the 8
    features["hist_item_id"] = np.concatenate([old, items_of(recent_cat, 4)], axis=1)
    features["hist_length"] = np.full(n, 12, np.int32)
    features["item_id"] = items_of(target_cat, 1)[:, 0]
    return features, label


N_TRAIN = 384


def held_out_auc(model, features, label, n_train: int = N_TRAIN, epochs: int = 10, lr: float = 1e-2) -> float:
    """Fits ``model`` on the first ``n_train`` users, returns the AUC on the others (held out:
    memorised ids do not carry over)."""
    from tfrec.metrics import auc
    from tfrec.training import compile_model

    train = {k: v[:n_train] for k, v in features.items()}
    test = {k: v[n_train:] for k, v in features.items()}
    compile_model(model, lr)
    model.fit(train, label[:n_train].astype(np.float32), epochs=epochs, batch_size=64, verbose=0)
    return auc(label[n_train:], model.predict(test, verbose=0))


def din_auc(spec, item_table, n_items: int, recent: int = 4) -> float:
    """DIN over the ``recent`` most recent behaviors on ``old_category_recall`` (the baseline to beat)."""
    from tfrec.configs import DINConfig
    from tfrec.models import DIN

    tf.keras.utils.set_random_seed(0)
    din = DIN(spec, DINConfig(embedding_dim=8, recent_length=recent, attention_units=(8,), mlp_units=(8,)),
              item_table=item_table)
    return held_out_auc(din, *old_category_recall(spec, n_items))
