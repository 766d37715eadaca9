"""The :class:`VectorIndex` (building, writes, searches) and its result, :class:`Neighbours`."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmrec.concurrency import ReadWriteLock
from lmrec.errors import ConfigError, DataError, UnknownIdError
from lmrec.index._backend import _faiss
from lmrec.index._config import IndexConfig, IndexKind, index_config
from lmrec.index._storage import load_index, save_index


@dataclass(frozen=True)
class Neighbours:
    """The result of one query: item ids, best first, and their scores.

    Fewer than ``k`` when fewer live, non-excluded items exist (or, rarely, when HNSW finds
    fewer).
    """

    ids: list[str]
    scores: np.ndarray = field(repr=False)
    """float32 ``(len(ids),)``, descending: inner products (cosines with ``metric="cosine"``)."""

    def __len__(self) -> int:
        return len(self.ids)


def _normalized(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be an integer of at least 1, got {k!r}")


class VectorIndex:
    """Item vectors by item id, searchable by inner product or cosine similarity.

    Args:
        dim: Dimension of every vector.
        config: An :class:`IndexConfig` (or a dict of its fields); ``None`` for the defaults.
        **overrides: :class:`IndexConfig` fields that replace those of ``config``.

    Raises:
        ConfigError: ``dim`` is below 1 or a config field is invalid.
    """

    def __init__(
        self,
        dim: int,
        config: IndexConfig | Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise ConfigError(f"dim must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        self.config = index_config(config, **overrides)
        self._rw = ReadWriteLock()
        self._write_mutex = threading.Lock()
        # Row r of the faiss index belongs to _row_ids[r]; _rows maps each live id to its row.
        self._index: Any = None
        self._kind: IndexKind = self._kind_for(0)
        self._row_ids: list[str | None] = []
        self._rows: dict[str, int] = {}
        self._live = np.zeros(0, dtype=bool)
        self._live_selector: Any = None
        self._live_bitmap: np.ndarray | None = None

    # ------------------------------------------------------------------------- building
    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        vectors: np.ndarray,
        config: IndexConfig | Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> VectorIndex:
        """An index holding ``vectors[i]`` under ``ids[i]``; the kind is chosen by its size.

        Raises:
            DataError: ``vectors`` is not 2-D, its rows do not match ``ids``, an id repeats or
                is not a string, or a vector holds NaN or infinity.
            ConfigError: A config field is invalid.
        """
        array = np.asarray(vectors)
        if array.ndim != 2:
            raise DataError(f"item vectors must be 2-D (items, dim), got shape {array.shape}")
        index = cls(int(array.shape[1]), config, **overrides)
        index.add(ids, array)
        return index

    def _kind_for(self, n_live: int) -> IndexKind:
        return "hnsw" if n_live >= self.config.hnsw_threshold else "flat"

    def _new_faiss_index(self, kind: IndexKind) -> Any:
        faiss = _faiss()
        if kind == "flat":
            return faiss.IndexFlatIP(self.dim)
        index = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.config.ef_construction
        index.hnsw.efSearch = self.config.ef_search
        return index

    def _check_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        if isinstance(ids, str):
            raise DataError("ids must be a sequence of item ids, got a single string")
        array = np.asarray(vectors)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise DataError(
                f"item vectors must have shape (n, {self.dim}) for this index, "
                f"got shape {array.shape}"
            )
        if len(array) != len(ids):
            raise DataError(f"{len(ids)} ids but {len(array)} vectors")
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise DataError(f"item vectors must be real numbers, got dtype {array.dtype}")
        array = np.ascontiguousarray(array, dtype=np.float32)
        bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"item vector of id {ids[first]!r} holds NaN or infinity "
                f"({int(bad.sum())} bad vector(s))"
            )
        seen: set[str] = set()
        for item in ids:
            if not isinstance(item, str):
                raise DataError(f"item id {item!r} is {type(item).__name__}, expected str")
            if item in seen:
                raise DataError(f"item id {item!r} appears twice in one add")
            seen.add(item)
        if self.config.metric == "cosine":
            array = _normalized(array)
        return array

    def _refresh_selector(self) -> None:
        """Rebuild the live-row selector after a write (caller holds the write lock)."""
        if self._live.all():
            self._live_selector, self._live_bitmap = None, None
            return
        faiss = _faiss()
        bitmap = np.packbits(self._live, bitorder="little")
        self._live_bitmap = bitmap  # faiss keeps a raw pointer into it
        self._live_selector = faiss.IDSelectorBitmap(bitmap)

    # ------------------------------------------------------------------------- writes
    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add items, or replace the vectors of ids already in the index.

        Searches started before the call see the old vectors; searches after it the new.

        Args:
            ids: Item ids, distinct.
            vectors: ``(len(ids), dim)`` vectors (converted to float32).

        Raises:
            DataError: Shapes do not match, an id repeats or is not a string, or a vector
                holds NaN or infinity. Nothing is added then.
        """
        array = self._check_vectors(ids, vectors)
        if len(array) == 0:
            return
        with self._write_mutex:
            replaced = [self._rows[i] for i in ids if i in self._rows]
            n_live = len(self._rows) - len(replaced) + len(array)
            if self._index is None or self._kind_for(n_live) != self._kind:
                self._rebuild(extra_ids=list(ids), extra_vectors=array)
                return
            with self._rw.write():
                start = len(self._row_ids)
                self._index.add(array)
                self._row_ids.extend(ids)
                live = np.ones(start + len(array), dtype=bool)
                live[:start] = self._live
                live[replaced] = False
                for r in replaced:
                    self._row_ids[r] = None
                self._live = live
                self._rows.update((item, start + j) for j, item in enumerate(ids))
                self._refresh_selector()
            self._maybe_compact()

    def remove(self, ids: Collection[str], *, missing_ok: bool = False) -> int:
        """Remove items; later searches no longer return them.

        Args:
            ids: Item ids.
            missing_ok: Skip ids that are not in the index instead of raising.

        Returns:
            How many items were removed.

        Raises:
            UnknownIdError: An id is not in the index (and ``missing_ok`` is false); nothing
                is removed then.
        """
        if isinstance(ids, str):
            raise DataError("ids must be a collection of item ids, got a single string")
        with self._write_mutex:
            if not missing_ok:
                for item in ids:
                    if item not in self._rows:
                        raise UnknownIdError("item", item)
            rows = [self._rows[i] for i in set(ids) if i in self._rows]
            if not rows:
                return 0
            with self._rw.write():
                live = self._live.copy()
                live[rows] = False
                self._live = live
                for r in rows:
                    gone = self._row_ids[r]
                    assert gone is not None
                    del self._rows[gone]
                    self._row_ids[r] = None
                self._refresh_selector()
            self._maybe_compact()
            return len(rows)

    def compact(self) -> None:
        """Rebuild the faiss index from the live vectors, dropping dead rows.

        Also switches between flat and HNSW when the live count has crossed
        ``hnsw_threshold``. Searches continue on the old index during the rebuild.
        """
        with self._write_mutex:
            self._rebuild()

    def _maybe_compact(self) -> None:
        ratio = self.config.compact_ratio
        rows = len(self._row_ids)
        if ratio is not None and rows and (rows - len(self._rows)) > ratio * rows:
            self._rebuild()

    def _rebuild(
        self, extra_ids: Sequence[str] = (), extra_vectors: np.ndarray | None = None
    ) -> None:
        """Build a new faiss index from the live rows (plus new ones) and swap it in.

        The caller holds the write mutex, so no other write interleaves; searches go on
        against the old index until the swap.
        """
        replaced = set(extra_ids)
        keep = [(item, row) for item, row in self._rows.items() if item not in replaced]
        ids = [item for item, _ in keep] + list(extra_ids)
        parts = []
        if keep and self._index is not None:
            rows = np.fromiter((row for _, row in keep), dtype=np.int64, count=len(keep))
            parts.append(self._reconstruct(rows))
        if extra_vectors is not None and len(extra_vectors):
            parts.append(extra_vectors)
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)
        kind = self._kind_for(len(ids))
        index = self._new_faiss_index(kind)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        with self._rw.write():
            self._index = index
            self._kind = kind
            self._row_ids = list(ids)
            self._rows = {item: row for row, item in enumerate(ids)}
            self._live = np.ones(len(ids), dtype=bool)
            self._refresh_selector()

    def _reconstruct(self, rows: np.ndarray) -> np.ndarray:
        """Stored vectors of faiss rows (as added: normalised for cosine)."""
        if len(rows) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        every = np.asarray(self._index.reconstruct_n(0, self._index.ntotal), dtype=np.float32)
        return every if np.array_equal(rows, np.arange(len(every))) else every[rows]

    # ------------------------------------------------------------------------- reads
    def __len__(self) -> int:
        """Number of live items."""
        return len(self._rows)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    @property
    def kind(self) -> IndexKind:
        """``"flat"`` (exact) or ``"hnsw"`` (approximate): the faiss index in use now."""
        return self._kind

    def ids(self) -> list[str]:
        """The live item ids, in row order."""
        with self._rw.read():
            return [i for i in self._row_ids if i is not None]

    def vector(self, item_id: str) -> np.ndarray:
        """The stored vector of an item (L2-normalised with ``metric="cosine"``).

        Raises:
            UnknownIdError: The id is not in the index.
        """
        with self._rw.read():
            row = self._rows.get(item_id)
            if row is None:
                raise UnknownIdError("item", item_id)
            return np.asarray(self._index.reconstruct(row), dtype=np.float32)

    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        array = np.asarray(queries)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2:
            raise DataError(f"queries must be 1-D (dim,) or 2-D (n, dim), got shape {array.shape}")
        if array.shape[1] != self.dim:
            raise DataError(
                f"query dimension is {array.shape[1]} but the index holds {self.dim}-d vectors"
            )
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise DataError(f"queries must be real numbers, got dtype {array.dtype}")
        array = np.ascontiguousarray(array, dtype=np.float32)
        bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            raise DataError(f"query row {int(np.flatnonzero(bad)[0])} holds NaN or infinity")
        if self.config.metric == "cosine":
            array = _normalized(array)
        return array

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude: Collection[str] = (),
        ef_search: int | None = None,
    ) -> list[Neighbours]:
        """The ``k`` best items for each query, by inner product (or cosine).

        Args:
            queries: ``(dim,)`` or ``(n, dim)``; one result per row.
            k: Items per query.
            exclude: Item ids left out of every result (e.g. the user's history); ids not in
                the index are ignored.
            ef_search: HNSW candidate list size for this call instead of the config's.

        Returns:
            One :class:`Neighbours` per query row.

        Raises:
            ConfigError: ``k`` or ``ef_search`` is below 1.
            DataError: The queries have the wrong shape or dimension, or hold NaN or infinity.
        """
        _check_k(k)
        if ef_search is not None and (isinstance(ef_search, bool) or ef_search < 1):
            raise ConfigError(f"ef_search must be at least 1, got {ef_search!r}")
        if isinstance(exclude, str):
            raise DataError("exclude must be a collection of item ids, got a single string")
        array = self._check_queries(queries)
        with self._rw.read():
            if self._index is None or not self._rows:
                return [Neighbours([], np.zeros(0, dtype=np.float32)) for _ in array]
            faiss = _faiss()
            excluded = np.unique(
                np.fromiter(
                    (r for r in (self._rows.get(i) for i in exclude) if r is not None),
                    dtype=np.int64,
                )
            )
            selector = self._live_selector
            held: list[Any] = []  # faiss selectors hold raw pointers to these
            if len(excluded):
                batch = faiss.IDSelectorBatch(excluded)
                not_excluded = faiss.IDSelectorNot(batch)
                held += [batch, not_excluded]
                if selector is not None:
                    selector = faiss.IDSelectorAnd(selector, not_excluded)
                    held.append(selector)
                else:
                    selector = not_excluded
            k_eff = min(int(k), len(self._rows) - len(excluded))
            if k_eff <= 0:
                return [Neighbours([], np.zeros(0, dtype=np.float32)) for _ in array]
            if self._kind == "hnsw":
                params = faiss.SearchParametersHNSW(
                    efSearch=int(ef_search or self.config.ef_search)
                )
            else:
                params = faiss.SearchParameters()
            if selector is not None:
                params.sel = selector
            scores, rows = self._index.search(array, k_eff, params=params)
            row_ids = self._row_ids
            out = []
            for score_row, label_row in zip(scores, rows, strict=True):
                found = label_row >= 0
                out.append(
                    Neighbours(
                        [row_ids[r] or "" for r in label_row[found]],
                        score_row[found].astype(np.float32),
                    )
                )
            return out

    def search_one(
        self,
        query: np.ndarray,
        k: int,
        *,
        exclude: Collection[str] = (),
        ef_search: int | None = None,
    ) -> Neighbours:
        """:meth:`search` for a single ``(dim,)`` query."""
        array = np.asarray(query)
        if array.ndim != 1:
            raise DataError(f"a single query must be 1-D (dim,), got shape {array.shape}")
        return self.search(array, k, exclude=exclude, ef_search=ef_search)[0]

    def similar_items(self, item_id: str, k: int, *, exclude: Collection[str] = ()) -> Neighbours:
        """The ``k`` items whose vectors are closest to ``item_id``'s, the item itself left out.

        Closeness is the index's metric: cosine similarity with ``metric="cosine"`` (the
        usual choice; for a dot-product model keep a second index with ``metric="cosine"``
        for this), inner product with ``metric="ip"``.

        Raises:
            UnknownIdError: The item is not in the index.
            ConfigError: ``k`` is below 1.
        """
        _check_k(k)
        query = self.vector(item_id)
        return self.search_one(query, k, exclude={item_id, *exclude})

    # ------------------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> None:
        """Write the index to ``directory`` (created when missing), atomically.

        New data files get fresh names; ``index.json``, which names them, is replaced last
        by a rename, so a reader (or a crash) sees either the old index or the new one,
        never a mix. Files of the previous save are deleted afterwards.
        """
        save_index(self, directory)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        config: IndexConfig | Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> VectorIndex:
        """Read an index written by :meth:`save`.

        Args:
            directory: The directory :meth:`save` wrote.
            config: Replaces the saved config (e.g. another ``ef_search``); ``None`` keeps
                it. The saved faiss index is used as it is until its next rebuild.
            **overrides: Fields that replace those of the (saved or given) config.

        Raises:
            ModelFileError: The directory holds no index or an inconsistent one.
        """
        return load_index(cls, directory, config, **overrides)
