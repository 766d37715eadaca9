"""Recommenders that read item text with a pretrained language model.

- :class:`TextSeqRecommender`: the main retrieval model, a causal transformer over
  language-model item vectors, with any fine-tuning strategy and optional id fusion.
- :class:`TextMeanRecommender`: the zero-training reference (mean of the history's frozen
  vectors, cosine similarity).
"""

from lmrec.models.text._base import TextRecommenderBase
from lmrec.models.text._config import TextMeanConfig, TextSeqConfig
from lmrec.models.text._mean import TextMeanRecommender
from lmrec.models.text._recommender import TextSeqRecommender

__all__ = [
    "TextMeanConfig",
    "TextMeanRecommender",
    "TextRecommenderBase",
    "TextSeqConfig",
    "TextSeqRecommender",
]
