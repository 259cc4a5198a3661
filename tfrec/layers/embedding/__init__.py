"""Feature embeddings: every declared feature (tfrec.data.schema) embedded one way, for every model."""
from tfrec.layers.embedding.feature_embedding import FeatureEmbedding
from tfrec.layers.embedding.item_embedding import ItemEmbedding
from tfrec.layers.embedding.item_features import ItemFeatureLookup

__all__ = ["FeatureEmbedding", "ItemEmbedding", "ItemFeatureLookup"]
