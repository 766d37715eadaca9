"""Honest full-ranking evaluation: metrics, the batched evaluator, run records and reports."""

from __future__ import annotations

from lmrec.evaluation.evaluator import (
    HISTORY_LENGTH_BUCKETS,
    EvalResult,
    Evaluator,
    Scorer,
    SliceFn,
    history_length_bucket,
)
from lmrec.evaluation.metrics import (
    auc,
    catalog_coverage,
    gauc,
    gini_index,
    hit_rate_at_k,
    intra_list_diversity,
    log_loss,
    long_tail_share,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    recall_at_k,
    target_ranks,
)
from lmrec.evaluation.reports import (
    RunRecord,
    markdown_table,
    package_versions,
    plot_learning_curve,
    ratio_columns,
)
from lmrec.evaluation.task import EvalTask

__all__ = [
    "HISTORY_LENGTH_BUCKETS",
    "EvalResult",
    "EvalTask",
    "Evaluator",
    "RunRecord",
    "Scorer",
    "SliceFn",
    "auc",
    "catalog_coverage",
    "gauc",
    "gini_index",
    "history_length_bucket",
    "hit_rate_at_k",
    "intra_list_diversity",
    "log_loss",
    "long_tail_share",
    "markdown_table",
    "mrr_at_k",
    "ndcg_at_k",
    "novelty",
    "package_versions",
    "plot_learning_curve",
    "ratio_columns",
    "recall_at_k",
    "target_ranks",
]
