"""The pre-split UniSRec format (Hou et al., KDD 2022), e.g. the Amazon "Scientific" set.

Files, for a prefix such as ``Scientific``:

- ``<prefix>.train.inter``, ``.valid.inter``, ``.test.inter``: RecBole atomic files with
  ``user_id:token  item_id_list:token_seq  item_id:token``, a history (space separated item
  indices, oldest first) and the next item. Train holds a row per prefix of each user's
  sequence; valid and test hold one row per user (leave-one-out).
- ``<prefix>.text``: ``item_id:token  text:token_seq``, item id (ASIN) and its text.
- ``<prefix>.item2index`` / ``<prefix>.user2index`` (optional): ``id<TAB>index`` lines. Without
  them the indices themselves are the ids.

Each user's full sequence is rebuilt by chaining their rows in time order (train rows by
history length, then valid, then test): every row's history must end the sequence so far,
and its target extends it. This recovers items that a length cap cut from the test history,
and checks the files against each other (the valid row must be the test history minus its
last item). Timestamps are positions ``0..n-1``, so a leave-one-out split by time reproduces
the given valid and test rows exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lmrec.data.loaders.delimited import Field, ParsedTable, read_delimited
from lmrec.data.loaders.recbole import read_atomic_file
from lmrec.data.schema import CATEGORIES, ITEM, TIME, USER, Dataset
from lmrec.errors import DataError

HISTORY = "item_id_list"
TEXT = "text"
PARTS: tuple[str, ...] = ("train", "valid", "test")


@dataclass(frozen=True)
class _Row:
    history: tuple[str, ...]
    target: str
    path: Path
    line: int


def find_unisrec_prefix(directory: Path) -> str:
    """The prefix of the single ``<prefix>.train.inter`` file in ``directory``.

    Raises:
        DataError: There is none, or several.
    """
    names = sorted(
        p.name.removesuffix(".train.inter") for p in directory.glob("*.train.inter") if p.is_file()
    )
    if not names:
        raise DataError("no *.train.inter file in this directory", path=directory)
    if len(names) > 1:
        raise DataError(
            f"several *.train.inter files ({', '.join(names)}); pass the file prefix",
            path=directory,
        )
    return names[0]


def load_unisrec(
    directory: str | Path, prefix: str | None = None, *, name: str | None = None
) -> Dataset:
    """Load a pre-split UniSRec dataset, rebuilding each user's full time-ordered sequence.

    Args:
        directory: The folder holding the files.
        prefix: The file prefix (``"Scientific"``); by default that of the single
            ``*.train.inter`` file there.
        name: Dataset name; defaults to the prefix.

    Returns:
        A dataset whose items are every item of ``item2index`` (or every index seen), with the
        text column ``text`` (``""`` for items without text) and empty categories.

    Raises:
        DataError: A file is missing or malformed, an index is unknown, or the rows of a user
            do not chain (the error names the file, line and the items that disagree).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError("no such directory", path=directory)
    prefix = prefix or find_unisrec_prefix(directory)
    item_ids = _read_index(directory / f"{prefix}.item2index", "item")
    user_ids = _read_index(directory / f"{prefix}.user2index", "user")

    train: dict[str, list[_Row]] = {}
    last_rows: dict[str, dict[str, _Row]] = {"valid": {}, "test": {}}
    for part in PARTS:
        path = directory / f"{prefix}.{part}.inter"
        if part != "train" and not path.exists():
            continue
        for user, row in _read_rows(path, item_ids, user_ids):
            if part == "train":
                train.setdefault(user, []).append(row)
            elif user in last_rows[part]:
                first = last_rows[part][user]
                raise DataError(
                    f"user {user!r} has a second {part} row (first on line {first.line})",
                    path=path,
                    line=row.line,
                    column=USER,
                )
            else:
                last_rows[part][user] = row

    users = list(dict.fromkeys([*train, *last_rows["valid"], *last_rows["test"]]))
    if all(u.isdigit() for u in users):
        users.sort(key=int)
    user_col: list[str] = []
    item_col: list[str] = []
    time_col: list[np.ndarray] = []
    for user in users:
        sequence = _rebuild(
            user, train.get(user, []), last_rows["valid"].get(user), last_rows["test"].get(user)
        )
        external_user = user_ids.get(user, user) if user_ids is not None else user
        user_col.extend([external_user] * len(sequence))
        item_col.extend(sequence if item_ids is None else (item_ids[i] for i in sequence))
        time_col.append(np.arange(len(sequence), dtype=np.int64))
    interactions = pd.DataFrame(
        {
            USER: pd.Series(user_col, dtype=str),
            ITEM: pd.Series(item_col, dtype=str),
            TIME: np.concatenate(time_col) if time_col else np.zeros(0, dtype=np.int64),
        }
    )
    items = _items(directory / f"{prefix}.text", item_ids, interactions[ITEM])
    return Dataset(
        name=name or prefix,
        interactions=interactions,
        items=items,
        users=None,
        text_fields=(TEXT,),
    )


def _read_index(path: Path, kind: str) -> dict[str, str] | None:
    """``index -> external id`` from an ``id<TAB>index`` file, in index order; None if absent."""
    if not path.exists():
        return None
    table = read_delimited(path, (Field("id"), Field("index", "int")), sep="\t")
    table.require_nonempty("id", f"{kind} id")
    table.require_unique("id", f"{kind} id")
    table.require_unique("index", f"{kind} index")
    frame = table.frame.sort_values("index", kind="stable")
    return dict(zip(frame["index"].astype(str), frame["id"].astype(str), strict=True))


def _read_rows(
    path: Path, item_ids: dict[str, str] | None, user_ids: dict[str, str] | None
) -> Iterable[tuple[str, _Row]]:
    atomic = read_atomic_file(path, required=(USER, HISTORY, ITEM))
    table = atomic.table
    table.require_nonempty(USER, "user index")
    table.require_nonempty(ITEM, "item index")
    if user_ids is not None:
        table.require_known(USER, pd.Index(list(user_ids)), "user index", "user2index")
    if item_ids is not None:
        table.require_known(ITEM, pd.Index(list(item_ids)), "item index", "item2index")
    frame = table.frame
    for row, (user, history, target) in enumerate(
        zip(
            frame[USER].astype(str),
            frame[HISTORY].astype(str),
            frame[ITEM].astype(str),
            strict=True,
        )
    ):
        items = tuple(history.split())
        if item_ids is not None:
            unknown = next((i for i in items if i not in item_ids), None)
            if unknown is not None:
                raise table.error(
                    f"unknown item index {unknown!r}, not in item2index", row, HISTORY
                )
        yield user, _Row(items, target, path, table.line_of(row))


def _chronological(rows: list[_Row]) -> list[_Row]:
    # Histories grow with time until a length cap; files list a user's rows oldest or newest
    # first, so a stable sort by history length after undoing a newest-first order is exact.
    if len(rows) > 1 and len(rows[0].history) > len(rows[-1].history):
        rows = rows[::-1]
    return sorted(rows, key=lambda r: len(r.history))


def _rebuild(user: str, train: list[_Row], valid: _Row | None, test: _Row | None) -> list[str]:
    sequence: list[str] = []
    previous: _Row | None = None
    for row in [*_chronological(train), valid, test]:
        if row is None:
            continue
        if previous is None:
            sequence = [*row.history, row.target]
        else:
            n = len(row.history)
            if n > len(sequence) or tuple(sequence[len(sequence) - n :]) != row.history:
                raise DataError(
                    f"the row of user {user!r} does not continue the row before it "
                    f"({previous.path.name} line {previous.line}): its history should end with "
                    f"{_tail(sequence, n)}, got {_tail(list(row.history), n)}",
                    path=row.path,
                    line=row.line,
                    column=HISTORY,
                )
            sequence.append(row.target)
        previous = row
    return sequence


def _tail(values: list[str], n: int, shown: int = 5) -> str:
    n = min(n, shown, len(values))
    part = " ".join(values[len(values) - n :]) if n else ""
    return f"[... {part}]" if len(values) > n else f"[{part}]"


def _items(path: Path, item_ids: dict[str, str] | None, seen: pd.Series) -> pd.DataFrame:
    texts: dict[str, str] = {}
    text_table: ParsedTable | None = None
    if path.exists():
        atomic = read_atomic_file(path, required=(ITEM,))
        text_table = atomic.table
        text_column = (
            TEXT if TEXT in atomic.types else next((c for c in atomic.types if c != ITEM), None)
        )
        text_table.require_nonempty(ITEM, "item id")
        text_table.require_unique(ITEM, "item id")
        if text_column is not None:
            texts = dict(
                zip(
                    text_table.frame[ITEM].astype(str),
                    text_table.frame[text_column].astype(str).str.strip(),
                    strict=True,
                )
            )
    if item_ids is not None:
        catalog = list(item_ids.values())
        if text_table is not None:
            text_table.require_known(ITEM, pd.Index(catalog), "item id", "item2index")
    else:
        catalog = list(dict.fromkeys(seen))
        if all(i.isdigit() for i in catalog):
            catalog.sort(key=int)
        if texts and not set(texts) & set(catalog):
            raise DataError(
                "the item ids of this file are not the item indices of the .inter files, and "
                "there is no item2index file to map them",
                path=path,
            )
        known = set(catalog)
        catalog.extend(i for i in texts if i not in known)
    return pd.DataFrame(
        {
            ITEM: pd.Series(catalog, dtype=str),
            TEXT: pd.Series([texts.get(i, "") for i in catalog], dtype=str),
            CATEGORIES: pd.Series([() for _ in catalog], dtype=object),
        }
    )
