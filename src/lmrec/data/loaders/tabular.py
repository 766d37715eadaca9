"""Generic interaction tables (CSV or Parquet) with a column mapping, and optional item and
user tables.

:class:`TableSource` describes the mapping so that a TOML config can hold it;
:func:`load_table` takes the same settings as keywords. Files ending in ``.parquet`` or
``.pq`` are read with pyarrow; anything else as delimited text with a header row (UTF-8).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from lmrec.data.loaders.delimited import ParsedTable, read_csv_table, read_text
from lmrec.data.schema import CATEGORIES, ITEM, RATING, TIME, USER, Dataset
from lmrec.errors import DataError

PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")
TimeFormat = Literal["unix", "datetime"]


class TableSource(BaseModel):
    """Where a tabular dataset lives and which columns mean what."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    path: Path
    """The interactions file (CSV/TSV, or Parquet by its suffix)."""
    user_col: str = USER
    """Column of the interactions file holding user ids."""
    item_col: str = ITEM
    """Column of the interactions file holding item ids."""
    time_col: str | None = None
    """Column holding the time of each interaction; without one, file order is time order."""
    time_format: TimeFormat = "unix"
    """``"unix"``: integer timestamps (any unit); ``"datetime"``: dates such as
    ``2024-05-01T12:00:00``, converted to unix seconds."""
    rating_col: str | None = None
    """Column holding a numeric rating, if any."""
    items_path: Path | None = None
    """Item table; without one the items are the ids seen in the interactions, without text."""
    item_id_col: str = ITEM
    """Column of the item table holding item ids."""
    text_cols: tuple[str, ...] | None = None
    """Item columns used as text, in display order; ``None`` takes every item column except
    the id and categories columns."""
    categories_col: str | None = None
    """Item column holding categories, split on ``categories_sep``."""
    categories_sep: str = "|"
    """Separator between the categories of one item."""
    users_path: Path | None = None
    """User attribute table, if any."""
    user_id_col: str = USER
    """Column of the user table holding user ids."""
    sep: str = ","
    """Field separator of the text files (``","``; ``"\\t"`` for TSV)."""
    name: str | None = None
    """Dataset name; defaults to the interactions file's stem."""

    @field_validator("sep", "categories_sep")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value


def load_table(
    path: str | Path,
    *,
    user_col: str = USER,
    item_col: str = ITEM,
    time_col: str | None = None,
    time_format: TimeFormat = "unix",
    rating_col: str | None = None,
    items_path: str | Path | None = None,
    item_id_col: str = ITEM,
    text_cols: Sequence[str] | None = None,
    categories_col: str | None = None,
    categories_sep: str = "|",
    users_path: str | Path | None = None,
    user_id_col: str = USER,
    sep: str = ",",
    name: str | None = None,
) -> Dataset:
    """Load interactions (and optionally items and users) from CSV or Parquet files.

    The arguments are those of :class:`TableSource`, which documents each.

    Raises:
        DataError: A file is missing, unreadable or malformed, a named column is absent, a
            value has the wrong type, an id repeats or an interaction names an unknown item;
            the error names the file, the line (CSV) or row (Parquet), the column and the value.
    """
    source = TableSource(
        path=Path(path),
        user_col=user_col,
        item_col=item_col,
        time_col=time_col,
        time_format=time_format,
        rating_col=rating_col,
        items_path=Path(items_path) if items_path is not None else None,
        item_id_col=item_id_col,
        text_cols=tuple(text_cols) if text_cols is not None else None,
        categories_col=categories_col,
        categories_sep=categories_sep,
        users_path=Path(users_path) if users_path is not None else None,
        user_id_col=user_id_col,
        sep=sep,
        name=name,
    )
    return load_table_source(source)


def load_table_source(source: TableSource) -> Dataset:
    """Load the dataset a :class:`TableSource` describes; see :func:`load_table`."""
    table = read_table(source.path, sep=source.sep)
    _require_columns(table, [source.user_col, source.item_col, source.time_col, source.rating_col])
    for column, what in ((source.user_col, "user id"), (source.item_col, "item id")):
        _require_ids(table, column, what)
    frame = table.frame
    interactions = pd.DataFrame({USER: frame[source.user_col], ITEM: frame[source.item_col]})
    if source.time_col is None:
        interactions[TIME] = np.arange(len(frame), dtype=np.int64)
    elif source.time_format == "unix" and not pd.api.types.is_datetime64_any_dtype(
        frame[source.time_col]
    ):
        interactions[TIME] = table.as_int(source.time_col)
    else:
        interactions[TIME] = _datetimes(table, source.time_col)
    if source.rating_col is not None:
        interactions[RATING] = table.as_float(source.rating_col)

    if source.items_path is not None:
        items, text_fields = _read_items(source)
        known = pd.Index(items[ITEM])
        table.require_known(source.item_col, known, "item id", source.items_path.name)
    else:
        seen = pd.unique(interactions[ITEM].to_numpy())
        items = pd.DataFrame({ITEM: seen, CATEGORIES: pd.Series([() for _ in seen], dtype=object)})
        text_fields = ()
    users = _read_users(source) if source.users_path is not None else None
    return Dataset(
        name=source.name or source.path.stem,
        interactions=interactions,
        items=items,
        users=users,
        text_fields=text_fields,
    )


def read_table(path: Path, *, sep: str = ",") -> ParsedTable:
    """Read a CSV (with a header row) or Parquet file; text columns stay text.

    Raises:
        DataError: The file is missing, empty, not decodable or not parseable.
    """
    if path.suffix.lower() not in PARQUET_SUFFIXES:
        table = read_csv_table(read_text(path), path, sep=sep)
        if table.frame.empty:
            raise DataError("no data rows below the header", path=path)
        return table
    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        frame = pd.read_parquet(path, engine="pyarrow")
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"cannot read as Parquet: {exc}", path=path) from None
    if frame.empty:
        raise DataError("the table has no rows", path=path)
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return ParsedTable(frame, path, first_line=1, rows_are_lines=False)


def _require_columns(table: ParsedTable, columns: Sequence[str | None]) -> None:
    present = list(table.frame.columns)
    for column in columns:
        if column is not None and column not in present:
            raise DataError(
                f"missing column {column!r} (found {', '.join(map(repr, present))})",
                path=table.path,
                line=1 if table.rows_are_lines else None,
                column=column,
            )


def _require_ids(table: ParsedTable, column: str, what: str) -> None:
    """Check an id column and turn it into strings in place (Parquet may hold numbers)."""
    values = table.frame[column]
    row = table.first_bad(values.isna())
    if row is not None:
        raise table.error(f"missing {what}", row, column)
    if pd.api.types.is_float_dtype(values):
        row = table.first_bad(values != np.round(values))
        if row is not None:
            raise table.error(
                f"{what} must be a string or an integer, got {values.iloc[row]!r}", row, column
            )
    if pd.api.types.is_float_dtype(values):  # 12.0 must become "12", like 12
        values = values.astype(np.int64)
    table.frame[column] = values.astype(str)
    table.require_nonempty(column, what)


def _datetimes(table: ParsedTable, column: str) -> np.ndarray:
    """Unix seconds of a date-time column; values without a time zone are taken as UTC."""
    raw = table.frame[column]
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = pd.Series(raw)
        parsed = parsed.dt.tz_localize("UTC") if parsed.dt.tz is None else parsed
    else:
        text = raw.astype(str).str.strip()
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    row = table.first_bad(parsed.isna())
    if row is not None:
        raise table.error(f"expected a date and time, got {raw.iloc[row]!r}", row, column)
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.int64)


def _read_items(source: TableSource) -> tuple[pd.DataFrame, tuple[str, ...]]:
    assert source.items_path is not None
    table = read_table(source.items_path, sep=source.sep)
    explicit = list(source.text_cols or ())
    _require_columns(table, [source.item_id_col, source.categories_col, *explicit])
    _require_ids(table, source.item_id_col, "item id")
    frame = table.frame
    table.require_unique(source.item_id_col, "item id")
    ids = frame[source.item_id_col].reset_index(drop=True)
    if source.text_cols is None:
        skip = {source.item_id_col, source.categories_col}
        text_fields = tuple(c for c in frame.columns if c not in skip)
    else:
        text_fields = tuple(source.text_cols)
    if ITEM in text_fields or CATEGORIES in text_fields:
        raise DataError(
            f"an item text column may not be named {ITEM!r} or {CATEGORIES!r}",
            path=table.path,
            column=ITEM if ITEM in text_fields else CATEGORIES,
        )
    items = pd.DataFrame({ITEM: ids})
    for column in text_fields:
        values = frame[column]
        items[column] = values.where(values.notna(), "").astype(str).reset_index(drop=True)
    raw = frame[source.categories_col].tolist() if source.categories_col else [None] * len(items)
    # Built as an object Series: pandas would read a plain list of tuples as a 2-D block.
    items[CATEGORIES] = pd.Series(
        [_split_categories(v, source.categories_sep) for v in raw], dtype=object, index=items.index
    )
    return items, text_fields


def _split_categories(value: object, sep: str) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    if isinstance(value, list | tuple | np.ndarray):  # a Parquet list column
        return tuple(str(v) for v in value)
    return tuple(part.strip() for part in str(value).split(sep) if part.strip())


def _read_users(source: TableSource) -> pd.DataFrame:
    assert source.users_path is not None
    table = read_table(source.users_path, sep=source.sep)
    _require_columns(table, [source.user_id_col])
    _require_ids(table, source.user_id_col, "user id")
    table.require_unique(source.user_id_col, "user id")
    ids = table.frame[source.user_id_col].reset_index(drop=True)
    users = table.frame.drop(columns=[source.user_id_col]).reset_index(drop=True)
    users.insert(0, USER, ids)
    return users
