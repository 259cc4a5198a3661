"""ItemEmbedding: ``e_item = [E_id(item); E_f(feature_f(item)) for each declared item feature]``."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfrec.data import schema as schema_lib
from tfrec.layers.embedding.feature_embedding import FeatureEmbedding
from tfrec.layers.embedding.item_features import ItemFeatureLookup
from tfrec.layers.id_embedding import IdEmbedding
from tfrec.registry import register


@register
class ItemEmbedding(tf.keras.layers.Layer):
    """The one item representation every model uses for the target and for each behavior.

    DIN (Zhou et al. 2018, sec. 4.1): an item is the concatenation of its id's embedding and its
    side features' embeddings (goods id, shop id, category id). Here the side features are the
    schema's item features, looked up in graph from the item table (``ItemFeatureLookup``) and
    embedded by ``FeatureEmbedding``; unknown item ids take the id OOV row and unknown features.
    With no item feature declared this is the id embedding alone.

    Args:
      n_items: number of item ids.
      dim: the id embedding size (and each feature's, unless its ``embedding_dim`` is set).
      features: the item ``FeatureDef`` s (or their ``to_dict()``); default none.
      tables: optional initial item table (``ItemTable.columns``).

    Input shape: int ``[...]`` item ids.
    Output shape: ``[..., output_dim]`` with ``output_dim = dim + sum of the feature sizes``.
    """

    def __init__(self, n_items: int, dim: int, features: Sequence = (),
                 tables: Optional[Mapping[str, np.ndarray]] = None, **kwargs):
        super().__init__(**kwargs)
        self.n_items = int(n_items)
        self.dim = int(dim)
        self.features = tuple(schema_lib.feature_def(f) for f in features)
        self.id_embedding = IdEmbedding(self.n_items, self.dim, name="id")
        self.lookup = ItemFeatureLookup(self.n_items, self.features, tables, name="item_features") \
            if self.features else None
        self.feature_embeddings = [FeatureEmbedding(fd, self.dim, name=f"feature_{fd.name}") for fd in self.features]

    @property
    def output_dim(self) -> int:
        return self.dim + sum(e.dim for e in self.feature_embeddings)

    def call(self, item_ids):
        parts = [self.id_embedding(item_ids)]
        if self.lookup is not None:
            values = self.lookup(item_ids)
            parts += [emb(values[emb.feature.name]) for emb in self.feature_embeddings]
        return tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]

    def get_config(self):
        return {**super().get_config(), "n_items": self.n_items, "dim": self.dim,
                "features": [f.to_dict() for f in self.features]}
