"""Most-popular baseline."""

from lmrec.models.baselines.pop._config import PopConfig
from lmrec.models.baselines.pop._model import PopularityRecommender

__all__ = ["PopConfig", "PopularityRecommender"]
