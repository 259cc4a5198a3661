"""Models: each implements the shared CTRModel interface (encode_user / score)."""
from tfrec.models.base import CTRModel
from tfrec.models.din import DIN
from tfrec.models.dmgin import DMGIN
from tfrec.models.dmqn import DMQN
from tfrec.models.siren import SIREN

MODELS = {"din": DIN, "dmgin": DMGIN, "dmqn": DMQN, "siren": SIREN}

__all__ = ["CTRModel", "DIN", "DMGIN", "DMQN", "MODELS", "SIREN"]
