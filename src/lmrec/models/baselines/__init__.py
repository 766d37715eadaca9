"""Baseline recommenders for honest comparison: most-popular, item-kNN, BPR-MF, SASRec.

Each family is a small package (``_config`` with the typed hyperparameters, ``_model`` with
the recommender); this module re-exports the public names. ``quick_ndcg_at_k`` is the
early-stopping metric shared by the trainable baselines.
"""

from lmrec.models.baselines._validation import quick_ndcg_at_k
from lmrec.models.baselines.bpr import BPRConfig, BPRRecommender
from lmrec.models.baselines.itemknn import ItemKNNConfig, ItemKNNRecommender
from lmrec.models.baselines.pop import PopConfig, PopularityRecommender
from lmrec.models.baselines.sasrec import SASRecConfig, SASRecRecommender

__all__ = [
    "BPRConfig",
    "BPRRecommender",
    "ItemKNNConfig",
    "ItemKNNRecommender",
    "PopConfig",
    "PopularityRecommender",
    "SASRecConfig",
    "SASRecRecommender",
    "quick_ndcg_at_k",
]
