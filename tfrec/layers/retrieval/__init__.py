"""General Search Units: in-graph retrieval of the behaviors relevant to a candidate (stock ops only)."""
from tfrec.layers.retrieval.top_k_behaviors import TopKBehaviors
from tfrec.layers.retrieval.top_k_target_attention import TopKTargetAttention

__all__ = ["TopKBehaviors", "TopKTargetAttention"]
