"""CHIME's utilization stage: a ranker with the compressed vector beats the same ranker without it."""
import numpy as np

from tfrec.compression.stage import VECTORS_FILE


def _auc(model_type, data_dir, tmp_path, user_vectors=None):
    from pipelines.evaluate import predictions
    from pipelines.train import train_model
    from tfrec.data.user_vectors import UserVectors
    from tfrec.metrics import ctr_metrics

    model, _ = train_model(model_type, data_dir, tmp_path, {"recent_length": 6, "embedding_dim": 8,
                                                            "mlp_units": [32, 16]},
                           epochs=4, batch_size=128, learning_rate=5e-3, seed=0, verbose=0,
                           user_vectors=user_vectors)
    preds = predictions(model, data_dir, "test", user_vectors=UserVectors.load(user_vectors) if user_vectors else None)
    return ctr_metrics(preds["user_id"], preds["label"], preds["prediction"])["auc"], model


def test_din_with_chime_beats_din_on_planted_long_term_interest(planted, compressed, tmp_path):
    """The label is "target topic == the user's taste", visible only in behaviors older than the
    ranker's 6-behavior window: DIN alone is near chance, DIN w/ CHIME reads the taste."""
    base, _ = _auc("din", planted.path, tmp_path / "din")
    with_chime, model = _auc("din", planted.path, tmp_path / "din-chime", compressed / VECTORS_FILE)
    assert model.spec.user_vector_dim == 12
    print(f"DIN {base:.3f}, DIN w/ CHIME {with_chime:.3f}")
    assert base < 0.62, base
    assert with_chime > base + 0.15, (base, with_chime)
