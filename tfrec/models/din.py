"""DIN: Deep Interest Network (Zhou et al. 2018) on the most recent behaviors."""
from tfrec.configs.din import DINConfig
from tfrec.models.base import CTRModel
from tfrec.registry import register


@register
class DIN(CTRModel):
    """DIN: target attention (local activation unit) over the S most recent behaviors.

    ``recent_length=50`` is the papers' "DIN" baseline; ~hundreds is "DIN-Middle" (``din-middle.yaml``:
    200); ``recent_length=None`` (the schema's whole history) is "DIN-Full" (``din-full.yaml``).

    User state: ``user_embedding`` ``[B, d]``, ``recent_behaviors`` ``[B, S, d]``,
    ``recent_mask`` ``[B, S]``.
    """

    config_class = DINConfig
    model_name = "din"

    def __init__(self, spec, config: DINConfig = DINConfig(), **kwargs):
        super().__init__(spec, config, **kwargs)

    @property
    def recent_length(self) -> int:
        """S; ``recent_length: null`` = the schema's whole history (DIN-Full)."""
        return self.config.recent_length or self.spec.max_history_length

    def encode_user(self, features, training=None):
        hist = self.padded_history(features)
        return {"user_embedding": self.encode_profile(features), **self.encode_recent(hist)}

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        return []
