"""BPR matrix-factorisation baseline."""

from lmrec.models.baselines.bpr._config import BPRConfig
from lmrec.models.baselines.bpr._model import BPRRecommender
from lmrec.models.baselines.bpr._module import BPRModule

__all__ = ["BPRConfig", "BPRModule", "BPRRecommender"]
