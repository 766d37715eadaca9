"""Readers for dataset file formats; each returns a validated :class:`~lmrec.data.Dataset`."""

from __future__ import annotations

from lmrec.data.loaders.movielens import load_movielens_100k, load_movielens_dat
from lmrec.data.loaders.recbole import load_recbole
from lmrec.data.loaders.tabular import TableSource, load_table, load_table_source
from lmrec.data.loaders.unisrec import load_unisrec

__all__ = [
    "TableSource",
    "load_movielens_100k",
    "load_movielens_dat",
    "load_recbole",
    "load_table",
    "load_table_source",
    "load_unisrec",
]
