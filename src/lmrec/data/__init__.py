"""Data layer: datasets, loaders, splits."""

from __future__ import annotations

from lmrec.data.loaders import (
    TableSource,
    load_movielens_100k,
    load_movielens_dat,
    load_recbole,
    load_table,
    load_table_source,
    load_unisrec,
)
from lmrec.data.registry import DATASETS, find_dataset, load_dataset
from lmrec.data.schema import (
    CATEGORIES,
    ITEM,
    RATING,
    TIME,
    USER,
    Dataset,
    IdMap,
    InteractionData,
    format_item_text,
)
from lmrec.data.splitting import (
    SPLIT_METHODS,
    EncodedSplit,
    Split,
    cold_item_split,
    cold_user_split,
    encode_split,
    implicit_feedback,
    leave_one_out_split,
    random_split,
    split_dataset,
    temporal_split,
)

__all__ = [
    "CATEGORIES",
    "DATASETS",
    "ITEM",
    "RATING",
    "SPLIT_METHODS",
    "TIME",
    "USER",
    "Dataset",
    "EncodedSplit",
    "IdMap",
    "InteractionData",
    "Split",
    "TableSource",
    "cold_item_split",
    "cold_user_split",
    "encode_split",
    "find_dataset",
    "format_item_text",
    "implicit_feedback",
    "leave_one_out_split",
    "load_dataset",
    "load_movielens_100k",
    "load_movielens_dat",
    "load_recbole",
    "load_table",
    "load_table_source",
    "load_unisrec",
    "random_split",
    "split_dataset",
    "temporal_split",
]
