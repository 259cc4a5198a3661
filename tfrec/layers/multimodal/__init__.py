"""Multimodal side information: prefix-encoded Semantic IDs, similarity buckets (SIREN sec. 4.1), SimTier (MUSE)."""
from tfrec.layers.multimodal.prefix_semantic_id_embedding import PrefixSemanticIdEmbedding
from tfrec.layers.multimodal.sim_tier import SimTier
from tfrec.layers.multimodal.similarity_bucket_embedding import SimilarityBucketEmbedding

__all__ = ["PrefixSemanticIdEmbedding", "SimTier", "SimilarityBucketEmbedding"]
