"""Data layer: datasets, loaders, splits."""

from __future__ import annotations

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

__all__ = [
    "CATEGORIES",
    "ITEM",
    "RATING",
    "TIME",
    "USER",
    "Dataset",
    "IdMap",
    "InteractionData",
    "format_item_text",
]
