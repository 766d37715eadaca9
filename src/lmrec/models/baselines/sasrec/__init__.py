"""SASRec: self-attentive sequential recommendation trained with full-softmax cross-entropy."""

from lmrec.models.baselines.sasrec._config import SASRecConfig
from lmrec.models.baselines.sasrec._model import SASRecModule
from lmrec.models.baselines.sasrec._recommender import SASRecRecommender

__all__ = ["SASRecConfig", "SASRecModule", "SASRecRecommender"]
