"""Models: each implements the shared CTRModel interface (encode_user / score)."""
from tfrec.models.base import CTRModel
from tfrec.models.din import DIN
from tfrec.models.dmgin import DMGIN
from tfrec.models.dmqn import DMQN
from tfrec.models.miss import MISS
from tfrec.models.muse import MUSE
from tfrec.models.siren import SIREN
from tfrec.models.sim import SIM

MODELS = {"din": DIN, "dmgin": DMGIN, "dmqn": DMQN, "siren": SIREN, "muse": MUSE, "miss": MISS, "sim": SIM}

__all__ = ["CTRModel", "DIN", "DMGIN", "DMQN", "MISS", "MODELS", "MUSE", "SIM", "SIREN"]
