"""Models: each implements the shared CTRModel interface (encode_user / score)."""
from tfrec.models.base import CTRModel
from tfrec.models.dien import DIEN
from tfrec.models.din import DIN
from tfrec.models.dmgin import DMGIN
from tfrec.models.dmqn import DMQN
from tfrec.models.dsin import DSIN
from tfrec.models.eta import ETA
from tfrec.models.miss import MISS
from tfrec.models.muse import MUSE
from tfrec.models.sdim import SDIM
from tfrec.models.siren import SIREN
from tfrec.models.sim import SIM
from tfrec.models.twin import TWIN
from tfrec.models.twin_v2 import TWINV2

MODELS = {"din": DIN, "dmgin": DMGIN, "dmqn": DMQN, "siren": SIREN, "muse": MUSE, "miss": MISS, "sim": SIM,
          "eta": ETA, "sdim": SDIM, "twin": TWIN, "twinv2": TWINV2,
          "dien": DIEN,
          "dsin": DSIN}

__all__ = ["CTRModel", "DIEN", "DIN", "DMGIN", "DMQN", "DSIN", "ETA", "MISS", "MODELS", "MUSE", "SDIM", "SIM",
           "SIREN", "TWIN", "TWINV2"]
