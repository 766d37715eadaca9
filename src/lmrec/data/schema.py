"""The in-memory dataset: interactions, items and (optionally) users, validated when built.

Column conventions (every loader produces exactly these):

- ``interactions``: ``user_id`` (str), ``item_id`` (str), ``timestamp`` (int64), and optionally
  ``rating`` (float64). Rows keep the order of the source file.
- ``items``: ``item_id`` (str, unique), one str column per text field (e.g. ``title``), and
  ``categories`` (a tuple of str per item, possibly empty).
- ``users`` (optional): ``user_id`` (str, unique) plus attribute columns.

Ids are strings everywhere at the boundary; models work on dense integer indices given by
:class:`IdMap`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lmrec.errors import DataError, UnknownIdError

USER = "user_id"
ITEM = "item_id"
TIME = "timestamp"
RATING = "rating"
CATEGORIES = "categories"


class IdMap:
    """A bijection between external string ids and dense indices ``0..n-1``.

    Args:
        ids: The external ids in index order; must be unique.
        kind: ``"user"`` or ``"item"``, used in error messages.
    """

    def __init__(self, ids: Iterable[str], kind: str) -> None:
        self.kind = kind
        self.ids = np.asarray([str(i) for i in ids], dtype=object)
        self._index: dict[str, int] = {v: i for i, v in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            seen: set[str] = set()
            dup = next(v for v in self.ids if v in seen or seen.add(v))  # type: ignore[func-returns-value]
            raise DataError(f"duplicate {kind} id {dup!r}", column=f"{kind}_id")

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, value: object) -> bool:
        return str(value) in self._index

    def index(self, value: str) -> int:
        """Return the index of one id, raising :class:`UnknownIdError` when absent."""
        try:
            return self._index[str(value)]
        except KeyError:
            raise UnknownIdError(self.kind, value) from None

    def encode(self, values: Iterable[str]) -> np.ndarray:
        """Return the int64 indices of ``values``; the first unknown id raises."""
        return np.fromiter((self.index(v) for v in values), dtype=np.int64)

    def decode(self, indices: Iterable[int] | np.ndarray) -> list[str]:
        """Return the external ids of ``indices``."""
        return [str(self.ids[int(i)]) for i in indices]

    def to_list(self) -> list[str]:
        return [str(v) for v in self.ids]


@dataclass(frozen=True)
class Dataset:
    """A validated recommendation dataset.

    Args:
        name: Short name (``"ml-100k"``) or the path it was loaded from.
        interactions: User-item events, see the module docstring for columns.
        items: The item catalog with text fields and categories.
        users: Optional user attributes.
        text_fields: The columns of ``items`` that hold text, in the order they are shown.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    text_fields: tuple[str, ...] = ("title",)

    def __post_init__(self) -> None:
        validate_tables(self.interactions, self.items, self.users, self.text_fields)

    @property
    def has_ratings(self) -> bool:
        return RATING in self.interactions.columns

    @property
    def n_users(self) -> int:
        return int(self.interactions[USER].nunique())

    @property
    def n_items(self) -> int:
        return len(self.items)

    def item_map(self) -> IdMap:
        """Indices over the whole catalog, in the order of ``items``."""
        return IdMap(self.items[ITEM], "item")

    def user_map(self) -> IdMap:
        """Indices over every user that has an interaction or a ``users`` row, sorted by id."""
        ids = set(self.interactions[USER].unique())
        if self.users is not None:
            ids.update(self.users[USER])
        return IdMap(sorted(ids, key=_natural_key), "user")

    def fingerprint(self) -> str:
        """A SHA-256 over interactions and item ids: equal data gives an equal fingerprint."""
        h = hashlib.sha256()
        cols = [USER, ITEM, TIME] + ([RATING] if self.has_ratings else [])
        h.update(
            pd.util.hash_pandas_object(self.interactions[cols], index=False).to_numpy().tobytes()
        )
        h.update(pd.util.hash_pandas_object(self.items[ITEM], index=False).to_numpy().tobytes())
        return h.hexdigest()

    def item_text(self, item_id: str) -> str:
        """The item's text fields joined as ``"title: ...; genres: ..."``."""
        row = self.items.loc[self.items[ITEM] == str(item_id)]
        if row.empty:
            raise UnknownIdError("item", item_id)
        return format_item_text(row.iloc[0], self.text_fields)

    def summary(self) -> dict[str, object]:
        """Counts and shape facts for ``lmrec data info``."""
        inter = self.interactions
        per_user = inter.groupby(USER).size()
        n_u, n_i = self.n_users, self.n_items
        out: dict[str, object] = {
            "name": self.name,
            "users": n_u,
            "items": n_i,
            "interactions": len(inter),
            "density": len(inter) / max(1, n_u * n_i),
            "interactions_per_user_min": int(per_user.min()) if len(per_user) else 0,
            "interactions_per_user_median": float(per_user.median()) if len(per_user) else 0.0,
            "interactions_per_user_max": int(per_user.max()) if len(per_user) else 0,
            "items_with_interactions": int(inter[ITEM].nunique()),
            "has_ratings": self.has_ratings,
            "text_fields": list(self.text_fields),
            "user_attributes": [c for c in self.users.columns if c != USER]
            if self.users is not None
            else [],
            "fingerprint": self.fingerprint()[:16],
        }
        if self.has_ratings:
            out["rating_mean"] = float(inter[RATING].mean())
        return out


def format_item_text(row: pd.Series, fields: Sequence[str]) -> str:
    """Join an item's fields with their names: ``"title: Alien (1979); genres: Horror, Sci-Fi"``."""
    parts = []
    shown = set()
    for f in fields:
        value = row.get(f)
        if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
            continue
        parts.append(f"{f}: {value}")
        shown.add(str(value))
    cats = row.get(CATEGORIES)
    if cats is not None and len(cats) > 0 and CATEGORIES not in fields:
        joined = ", ".join(cats)
        if joined not in shown:  # e.g. MovieLens shows them already as its "genres" field
            parts.append(f"{CATEGORIES}: {joined}")
    return "; ".join(parts)


def _natural_key(value: str) -> tuple[int, int | str]:
    # Numeric ids sort numerically ("2" < "10"), others lexically after them.
    return (0, int(value)) if value.isdigit() else (1, value)


def validate_tables(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    users: pd.DataFrame | None,
    text_fields: Sequence[str],
) -> None:
    """Check columns, types, duplicates and referential integrity; raise :class:`DataError`."""
    for col in (USER, ITEM, TIME):
        if col not in interactions.columns:
            raise DataError(f"interactions lack the required column {col!r}", column=col)
    if ITEM not in items.columns:
        raise DataError(f"items lack the required column {ITEM!r}", column=ITEM)
    if not pd.api.types.is_integer_dtype(interactions[TIME]):
        raise DataError(
            f"timestamps must be integers, got dtype {interactions[TIME].dtype}", column=TIME
        )
    if RATING in interactions.columns and not pd.api.types.is_numeric_dtype(interactions[RATING]):
        raise DataError(
            f"ratings must be numeric, got dtype {interactions[RATING].dtype}", column=RATING
        )
    for col in (USER, ITEM):
        ids = interactions[col]
        if isinstance(ids.dtype, pd.StringDtype):  # only missing values can be non-strings
            bad = ids.isna()
        else:
            bad = ids.map(lambda v: not isinstance(v, str))
        if bad.any():
            value = interactions[col][bad].iloc[0]
            raise DataError(f"ids must be strings, got {value!r}", column=col)
    dup = items[ITEM].duplicated()
    if dup.any():
        raise DataError(f"duplicate item id {items[ITEM][dup].iloc[0]!r}", column=ITEM)
    unknown = ~interactions[ITEM].isin(items[ITEM])
    if unknown.any():
        first = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DataError(
            f"interaction row {first + 1} names unknown item id "
            f"{interactions[ITEM].iloc[first]!r} ({int(unknown.sum())} rows in all)",
            column=ITEM,
        )
    for f in text_fields:
        if f not in items.columns:
            raise DataError(f"text field {f!r} is not an item column", column=f)
    if users is not None:
        if USER not in users.columns:
            raise DataError(f"users lack the required column {USER!r}", column=USER)
        dup = users[USER].duplicated()
        if dup.any():
            raise DataError(f"duplicate user id {users[USER][dup].iloc[0]!r}", column=USER)


@dataclass
class InteractionData:
    """Interactions encoded as dense indices, the form every model trains on.

    ``user_map`` and ``item_map`` cover the whole dataset (all users, the whole catalog), so a
    model fitted on a split still scores every item. Arrays are aligned and sorted by
    (user, timestamp) with a stable sort, so ties keep their file order.
    """

    user_map: IdMap
    item_map: IdMap
    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    ratings: np.ndarray | None = None
    _sequences: list[np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, user_map: IdMap, item_map: IdMap) -> InteractionData:
        """Encode an interactions frame with the given maps (unknown ids raise)."""
        u = user_map.encode(frame[USER])
        i = item_map.encode(frame[ITEM])
        t = frame[TIME].to_numpy(dtype=np.int64)
        order = np.lexsort((t, u))  # stable: primary user, secondary time, ties in file order
        r = frame[RATING].to_numpy(dtype=np.float64)[order] if RATING in frame.columns else None
        return cls(user_map, item_map, u[order], i[order], t[order], r)

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    def __len__(self) -> int:
        return len(self.users)

    def sequences(self) -> list[np.ndarray]:
        """Per user index, the time-ordered item indices (empty array for users without any)."""
        if self._sequences is None:
            bounds = np.searchsorted(self.users, np.arange(self.n_users + 1))
            self._sequences = [self.items[bounds[u] : bounds[u + 1]] for u in range(self.n_users)]
        return self._sequences

    def matrix(self) -> sp.csr_matrix:
        """Binary users x items CSR matrix (repeated interactions count once)."""
        m = sp.csr_matrix(
            (np.ones(len(self.users), dtype=np.float32), (self.users, self.items)),
            shape=(self.n_users, self.n_items),
        )
        m.data[:] = 1.0
        return m

    def digest(self) -> str:
        """A SHA-256 hex digest of the encoded interactions and the catalog and user counts.

        Training code stores it in checkpoints so that a resume never continues on other data.
        """
        h = hashlib.sha256()
        for array in (self.users, self.items):
            h.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        h.update(f"{self.n_users},{self.n_items}".encode())
        return h.hexdigest()

    def item_counts(self) -> np.ndarray:
        """Number of interactions per item index."""
        return np.bincount(self.items, minlength=self.n_items)
