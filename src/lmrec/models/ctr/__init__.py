"""The CTR cross-encoder: P(click | user profile text, item text) through a language model.

Input ``"<user profile> [SEP] <item text>"`` → PLM (any tuning strategy of
:mod:`lmrec.text.tuning`) → pooled vector → MLP head → sigmoid; trained with binary
cross-entropy (or MSE on explicit ratings). Used to predict likes (AUC, GAUC, LogLoss) and
to re-rank a retrieval model's candidates (:class:`RerankedRecommender`).

Example::

    model = CTRModel(profile_items=5, max_examples=5000)
    model.fit(dataset, split.train, valid=model.heldout_examples(split, "valid"))
    print(model.evaluate(model.heldout_examples(split, "test")))
    reranked = RerankedRecommender(sasrec, model, top_n=50)
"""

from lmrec.models.ctr._catalog import CTRCatalog
from lmrec.models.ctr._config import CTRConfig
from lmrec.models.ctr._examples import (
    NO_ITEM,
    CTRExamples,
    interaction_examples,
    merge_interactions,
    recent_items,
    split_examples,
)
from lmrec.models.ctr._model import CrossEncoderCTR, CTRHead
from lmrec.models.ctr._pairs import PairEncoder, pair_template
from lmrec.models.ctr._predictor import CTRModel, ctr_metrics
from lmrec.models.ctr._profile import item_titles, profile_text, short_title, user_attributes
from lmrec.models.ctr._rerank import (
    CandidateScorer,
    RerankedRecommender,
    rerank_scores,
    top_candidates,
)

__all__ = [
    "NO_ITEM",
    "CTRCatalog",
    "CTRConfig",
    "CTRExamples",
    "CTRHead",
    "CTRModel",
    "CandidateScorer",
    "CrossEncoderCTR",
    "PairEncoder",
    "RerankedRecommender",
    "ctr_metrics",
    "interaction_examples",
    "item_titles",
    "merge_interactions",
    "pair_template",
    "profile_text",
    "recent_items",
    "rerank_scores",
    "short_title",
    "split_examples",
    "top_candidates",
    "user_attributes",
]
