"""RecBole atomic files: ``<prefix>.inter`` (required), ``<prefix>.item`` and ``<prefix>.user``.

Each file is tab separated with a ``name:type`` header (types ``token``, ``token_seq``,
``float``, ``float_seq``). The fields ``user_id``, ``item_id``, ``timestamp`` and ``rating``
are recognised in ``.inter``; a float timestamp is rounded down to an integer, and without one
the file order is the time order (timestamp = row number).

With a ``.item`` file, its ``token``/``token_seq`` columns other than ``item_id`` are the text
fields, and a ``token_seq`` column named ``categories``, ``genre`` or ``class`` becomes the
``categories`` tuple (space separated). Without one, the items are the ids seen in ``.inter``
(in order of first appearance) and there is no item text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lmrec.data.loaders.delimited import Field, ParsedTable, parse_delimited, read_text
from lmrec.data.schema import CATEGORIES, ITEM, RATING, TIME, USER, Dataset
from lmrec.errors import DataError

ATOMIC_TYPES: tuple[str, ...] = ("token", "token_seq", "float", "float_seq")
#: Item columns taken as categories, first match wins.
CATEGORY_COLUMNS: tuple[str, ...] = ("categories", "genre", "class")
_TEXT_TYPES = ("token", "token_seq")


@dataclass(frozen=True)
class AtomicFile:
    """A parsed atomic file: every column as text, plus the declared type of each.

    Args:
        table: The rows; columns are the field names without their types.
        types: Field name to declared type, in header order.
    """

    table: ParsedTable
    types: dict[str, str]

    @property
    def frame(self) -> pd.DataFrame:
        return self.table.frame


def read_atomic_file(path: str | Path, *, required: Sequence[str] = ()) -> AtomicFile:
    """Read one atomic file; ``required`` names fields the header must have.

    Raises:
        DataError: Missing file, bad header (a field not ``name:type``, an unknown type, a
            repeated name, a missing required field) or a malformed line.
    """
    path = Path(path)
    text = read_text(path)
    header = text.partition("\n")[0].removesuffix("\r")
    if not header.strip():
        raise DataError(
            "file is empty" if not text.strip() else "empty header line", path=path, line=1
        )
    types: dict[str, str] = {}
    for raw in header.split("\t"):
        name, colon, kind = raw.strip().rpartition(":")
        if not colon or not name:
            raise DataError(
                f"header field {raw!r} is not of the form name:type", path=path, line=1, column=raw
            )
        if kind not in ATOMIC_TYPES:
            raise DataError(
                f"unknown field type {kind!r} (expected one of {', '.join(ATOMIC_TYPES)})",
                path=path,
                line=1,
                column=name,
            )
        if name in types:
            raise DataError(
                f"field {name!r} appears twice in the header", path=path, line=1, column=name
            )
        types[name] = kind
    for name in required:
        if name not in types:
            raise DataError(
                f"missing required field {name!r} (the header has {', '.join(types)})",
                path=path,
                line=1,
                column=name,
            )
    table = parse_delimited(text, path, [Field(n) for n in types], sep="\t", skip_lines=1)
    for name, kind in types.items():
        if kind == "float":
            table.as_float(name, allow_empty=True)  # fail early, naming the line
    return AtomicFile(table, types)


def find_atomic_prefix(directory: Path) -> str:
    """The prefix of the single ``<prefix>.inter`` file in ``directory``.

    Raises:
        DataError: There is none, or several.
    """
    names = sorted(p.name.removesuffix(".inter") for p in directory.glob("*.inter") if p.is_file())
    if not names:
        raise DataError("no *.inter file in this directory", path=directory)
    if len(names) > 1:
        raise DataError(
            f"several *.inter files ({', '.join(names)}); pass the file prefix", path=directory
        )
    return names[0]


def load_recbole(
    directory: str | Path, prefix: str | None = None, *, name: str | None = None
) -> Dataset:
    """Load a dataset in RecBole atomic-file format.

    Args:
        directory: The folder holding ``<prefix>.inter`` and optionally ``.item``/``.user``.
        prefix: The file prefix; by default that of the single ``*.inter`` file there.
        name: Dataset name; defaults to the prefix.

    Raises:
        DataError: A file is missing or malformed; the error names the file, line and value.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError("no such directory", path=directory)
    prefix = prefix or find_atomic_prefix(directory)
    inter = read_atomic_file(directory / f"{prefix}.inter", required=(USER, ITEM))
    for column in (USER, ITEM):
        if inter.types[column] != "token":
            raise DataError(
                f"{column} must be of type token, got {inter.types[column]}",
                path=inter.table.path,
                line=1,
                column=column,
            )
    inter.table.require_nonempty(USER, "user id")
    inter.table.require_nonempty(ITEM, "item id")

    item_path = directory / f"{prefix}.item"
    if item_path.exists():
        items, text_fields = _items_from_file(item_path)
        inter.table.require_known(ITEM, pd.Index(items[ITEM]), "item id", item_path.name)
    else:
        seen = pd.unique(inter.frame[ITEM].astype(str).to_numpy())
        items = pd.DataFrame({ITEM: seen, CATEGORIES: pd.Series([() for _ in seen], dtype=object)})
        text_fields = ()

    user_path = directory / f"{prefix}.user"
    users = _users_from_file(user_path) if user_path.exists() else None
    return Dataset(
        name=name or prefix,
        interactions=_interactions(inter),
        items=items,
        users=users,
        text_fields=text_fields,
    )


def _interactions(inter: AtomicFile) -> pd.DataFrame:
    frame = inter.frame
    columns: dict[str, object] = {
        USER: frame[USER].astype(str),
        ITEM: frame[ITEM].astype(str),
    }
    if TIME in inter.types:
        columns[TIME] = inter.table.as_int(TIME, round_down=True)
    else:
        columns[TIME] = np.arange(len(frame), dtype=np.int64)
    if RATING in inter.types:
        columns[RATING] = inter.table.as_float(RATING)
    return pd.DataFrame(columns)


def _items_from_file(path: Path) -> tuple[pd.DataFrame, tuple[str, ...]]:
    atomic = read_atomic_file(path, required=(ITEM,))
    atomic.table.require_nonempty(ITEM, "item id")
    atomic.table.require_unique(ITEM, "item id")
    frame = atomic.frame
    category_column = next(
        (c for c in CATEGORY_COLUMNS if atomic.types.get(c) in _TEXT_TYPES), None
    )
    text_fields = tuple(
        c
        for c, kind in atomic.types.items()
        if kind in _TEXT_TYPES and c not in (ITEM, category_column)
    )
    items = pd.DataFrame({ITEM: frame[ITEM].astype(str)})
    for column, kind in atomic.types.items():
        if column in (ITEM, category_column):
            continue
        if kind == "float":
            items[column] = atomic.table.as_float(column, allow_empty=True)
        else:
            items[column] = frame[column].astype(str).str.strip()
    raw = frame[category_column].astype(str) if category_column else [""] * len(items)
    # Built as an object Series: pandas would read a plain list of tuples as a 2-D block.
    items[CATEGORIES] = pd.Series([tuple(v.split()) for v in raw], dtype=object, index=items.index)
    return items, text_fields


def _users_from_file(path: Path) -> pd.DataFrame:
    atomic = read_atomic_file(path, required=(USER,))
    atomic.table.require_nonempty(USER, "user id")
    atomic.table.require_unique(USER, "user id")
    users = pd.DataFrame({USER: atomic.frame[USER].astype(str)})
    for column, kind in atomic.types.items():
        if column == USER:
            continue
        if kind == "float":
            users[column] = atomic.table.as_float(column, allow_empty=True)
        else:
            users[column] = atomic.frame[column].astype(str)
    return users
