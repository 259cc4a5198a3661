"""The notebook API: a data directory, any registered model, fit / evaluate / export in ten lines.

.. code-block:: python

    import tfrec

    tfrec.write_tfrecords("DATA")                       # raw/ Parquet + raw/schema.yaml -> TFRecords
    data = tfrec.open_data("DATA")                      # spec, item table, groups, user histories
    model = tfrec.build_model("din", data, embedding_dim=16)
    model.fit(model.prepare_training_data(data.dataset("train", shuffle=True)), epochs=2)
    print(tfrec.evaluate(model, data, "test"))          # {"auc": ..., "gauc": ..., "logloss": ...}
    tfrec.export_model(model, "saved_models", "din")    # user_tower / score / serving_default

Precomputed per-user vectors (CHIME's compressed interests, ``tfrec.data.user_vectors``):
``tfrec.open_data("DATA", user_vectors="chime.npz")``; every model built for that ``DataDir`` reads
them as the feature ``user_vector`` and every dataset of it carries them.

Everything here is a thin layer over the pieces the CLI uses (``pipelines/``, ``tfrec.training``,
``tfrec.export``): one code path, no model-specific branch.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Dict, Optional

import tensorflow as tf

from tfrec.data.spec import FeatureSpec


@dataclasses.dataclass
class DataDir:
    """A data directory written by ``write_tfrecords`` (see ``docs/data.md`` for the layout).

    Attributes:
      path: the directory.
      spec: its ``FeatureSpec`` (``spec.json``: the schema + measured statistics).
      item_table: the ``ItemTable`` (``item_features.npz``), or None when no item feature is declared.
      groups: the K-means ``GroupTable`` (``groups.npz``, from ``tfrec cluster``), or None.
      user_vectors: precomputed per-user vectors (``UserVectors``), or None: ``dataset`` adds them as
        ``user_vector`` and ``build_model`` builds models that read them.
    """

    path: Path
    spec: FeatureSpec
    item_table: Any = None
    groups: Any = None
    user_vectors: Any = None

    @property
    def model_spec(self) -> FeatureSpec:
        """The spec of models built for this data: ``spec`` + ``user_vector_dim`` of ``user_vectors``."""
        if self.user_vectors is None:
            return self.spec
        return dataclasses.replace(self.spec, user_vector_dim=self.user_vectors.dim)

    @functools.cached_property
    def item_content(self):
        """The items' content vectors and Semantic IDs (``ItemContent``: ``raw/items.npz``,
        ``semantic_ids.npz``), for SIREN, MUSE and MISS; loaded on first use."""
        from tfrec.data.item_content import ItemContent

        return ItemContent.load(self.path, self.spec.n_items)

    @functools.cached_property
    def histories(self):
        """Every user's history (``UserHistories``), loaded once and shared by all splits."""
        from pipelines.common import history_files
        from tfrec.data.dataset import load_user_histories

        return load_user_histories(history_files(self.path), self.spec)

    def dataset(self, split: str = "train", batch_size: int = 256, shuffle: bool = False, seed: int = 0,
                min_request_timestamp: Optional[int] = None) -> tf.data.Dataset:
        """``(features, label)`` batches of one split, each history cut at its request time (+ ``user_vector``
        with ``user_vectors``); ``min_request_timestamp`` keeps the examples requested at or after it."""
        from pipelines.common import make_split_dataset

        return make_split_dataset(self.path, split, self.spec, batch_size, shuffle=shuffle, seed=seed,
                                  history=self.histories, user_vectors=self.user_vectors,
                                  min_request_timestamp=min_request_timestamp)


def write_tfrecords(path: os.PathLike, schema: Optional[os.PathLike] = None,
                    max_history_length: Optional[int] = None) -> DataDir:
    """Raw logs (``path/raw/``: Parquet files + ``schema.yaml``) -> validated TFRecords, ``spec.json``
    and the item table; returns the opened directory. Bad data raises naming the record and field."""
    from pipelines import write_tfrecords as stage
    from pipelines.common import stage_args

    argv = ["--data", path] + (["--schema", schema] if schema else []) + \
        (["--max-history-length", max_history_length] if max_history_length else [])
    stage.run(stage_args(stage, argv))
    return open_data(path)


def load_schema(path: os.PathLike, **sizes) -> FeatureSpec:
    """A YAML schema file as a ``FeatureSpec`` (``sizes``: e.g. ``n_items`` when the file has none)."""
    return FeatureSpec.from_schema_file(path, **sizes)


def open_data(path: os.PathLike, user_vectors: Optional[os.PathLike] = None) -> DataDir:
    """Opens a data directory: its spec, item table, (when ``tfrec cluster`` ran) group table and,
    with ``user_vectors`` (a ``.npz`` path or a ``UserVectors``), precomputed per-user vectors."""
    from pipelines.common import GROUPS, load_item_table, load_spec
    from tfrec.data.user_vectors import UserVectors

    path = Path(path)
    spec = load_spec(path)
    groups = None
    if (path / GROUPS).exists():
        from tfrec.grouping import load_group_table

        groups = load_group_table(path / GROUPS)
    if user_vectors is not None and not isinstance(user_vectors, UserVectors):
        user_vectors = UserVectors.load(user_vectors)
    return DataDir(path, spec, load_item_table(path, spec), groups, user_vectors)


def build_model(name: str, data: DataDir, config: Optional[Dict[str, Any]] = None, learning_rate: float = 2e-3,
                seed: int = 0, **overrides):
    """A registered model (``tfrec.models.MODELS``) built for ``data`` and compiled (Adam, binary
    cross-entropy, AUC); ``config`` / ``overrides`` set its config fields (e.g. ``embedding_dim=16``).
    Models with data-derived constants (SIREN's similarity range, DMGIN's ``top_k_groups: 0``) are sized from
    the training split; fit on ``model.prepare_training_data(data.dataset("train"))`` (DIEN's negatives).
    With ``data.user_vectors`` the model reads them (``user_vector_dim`` = their D)."""
    from tfrec.models import MODELS
    from tfrec.training import build_model as build, compile_model, item_frequency

    tf.keras.utils.set_random_seed(seed)
    content = data.item_content if getattr(MODELS.get(name), "uses_item_content", False) else None
    train = data.dataset("train", shuffle=True, seed=seed)
    model = build(name, data.model_spec, {**(config or {}), **overrides}, groups=data.groups,
                  item_table=data.item_table, item_frequency=item_frequency(data.histories, data.spec.n_items),
                  item_content=content, train_data=train)
    model.adapt(model.prepare_training_data(train))
    return compile_model(model, learning_rate)


def evaluate(model, data: DataDir, split: str = "test", batch_size: int = 1024) -> Dict[str, float]:
    """AUC, GAUC (impression-weighted per-user AUC) and logloss of ``model`` on one split."""
    from tfrec.metrics import ctr_metrics
    from tfrec.training import predict

    cols = predict(model, data.dataset(split, batch_size=batch_size))
    return ctr_metrics(cols["user_id"], cols["label"], cols["prediction"])


def export_model(model, export_base: os.PathLike, name: str, version: Optional[int] = None) -> Path:
    """Exports ``export_base/name/<version>/`` (atomic) with ``user_tower``, ``score``, ``serving_default``."""
    from tfrec.export import export_saved_model

    return export_saved_model(model, model.spec, export_base, name, version=version)
