"""Text vectors cached on disk, so re-runs and restarts never encode the same text twice.

Vectors live under ``<cache root>/vectors/<model key>/`` (see
:func:`lmrec.data.cache.cache_root`). The model key hashes everything that changes a vector
except the text: the encoder's ``model_id`` (name or path plus a checkpoint fingerprint or the
package version), pooling, ``max_length`` and normalisation. Inside, each write is one shard
``shard-*.npz`` holding the SHA-256 digests of its texts and their float32 vectors. A shard is
written to a hidden temporary file, flushed to disk and renamed into place, so an interrupted
write leaves no partial shard; unreadable shards are ignored with a warning. Several processes
may share a directory: each writes its own shards, and many small shards are merged now and
then into one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from lmrec.data.cache import cache_root
from lmrec.data.schema import CATEGORIES, ITEM, Dataset, format_item_text
from lmrec.errors import ConfigError
from lmrec.text.encoder import ItemTextEncoder

logger = logging.getLogger(__name__)

#: Bump when the layout or the meaning of cached vectors changes.
VECTOR_CACHE_VERSION = 1
#: Merge the shards of a model key once there are more than this many.
MAX_SHARDS = 16
#: Texts encoded between two cache writes, so an interrupted long encode keeps its progress.
CHUNK_BATCHES = 50

_SHARD_GLOB = "shard-*.npz"
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 3600.0
_DIGEST_DTYPE = np.dtype("S32")


def text_digest(text: str) -> bytes:
    """The SHA-256 digest (32 bytes) of a text's UTF-8 encoding."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def encoder_cache_description(encoder: ItemTextEncoder) -> dict[str, object]:
    """Everything besides the text that determines the vectors ``encoder`` produces."""
    return {
        "model_id": encoder.model_id,
        "pooling": encoder.pooling,
        "max_length": encoder.config.max_length,
        "normalize": encoder.config.normalize,
        "dim": encoder.dim,
        "version": VECTOR_CACHE_VERSION,
    }


def encoder_cache_key(encoder: ItemTextEncoder) -> str:
    """A folder name for ``encoder``'s vectors: a readable model name and a hash."""
    description = encoder_cache_description(encoder)
    digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:24]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(encoder.model_id.split("@")[0]).name)[-40:]
    return f"{name or 'model'}-{digest}"


class VectorCache:
    """The cached vectors of one encoder setting (one model key).

    Args:
        directory: The model key's folder; created on the first write.
        dim: The vector length; shards of another length are ignored.
        description: Written to ``key.json`` beside the shards, for people reading the cache.
    """

    def __init__(
        self, directory: Path, dim: int, description: dict[str, object] | None = None
    ) -> None:
        self.directory = directory
        self.dim = dim
        self.description = description or {}
        self._loaded: set[str] = set()
        self._shards: list[np.ndarray] = []
        self._index: dict[bytes, tuple[int, int]] = {}

    @classmethod
    def for_encoder(
        cls, encoder: ItemTextEncoder, cache_dir: str | Path | None = None
    ) -> VectorCache:
        """The cache of ``encoder``'s current setting under ``cache_root(cache_dir)``."""
        directory = cache_root(cache_dir) / "vectors" / encoder_cache_key(encoder)
        return cls(directory, encoder.dim, encoder_cache_description(encoder))

    def __len__(self) -> int:
        self._refresh()
        return len(self._index)

    def shard_count(self) -> int:
        """How many shard files the folder holds now."""
        return len(self._shard_files())

    # ----------------------------------------------------------------------------- reading

    def _shard_files(self) -> list[Path]:
        try:
            return sorted(self.directory.glob(_SHARD_GLOB))
        except OSError:
            return []

    def _refresh(self) -> None:
        """Read shards written since the last look (by this or another process)."""
        for path in self._shard_files():
            if path.name in self._loaded:
                continue
            self._loaded.add(path.name)
            try:
                with np.load(path, allow_pickle=False) as data:
                    keys = np.asarray(data["keys"])
                    vectors = np.asarray(data["vectors"])
            except FileNotFoundError:  # merged away by another process meanwhile
                continue
            except Exception as exc:  # a damaged file must never break encoding
                logger.warning("ignoring unreadable vector cache shard %s: %s", path, exc)
                continue
            if (
                keys.dtype != _DIGEST_DTYPE
                or vectors.dtype != np.float32
                or vectors.shape != (len(keys), self.dim)
            ):
                logger.warning("ignoring vector cache shard %s of unexpected shape", path)
                continue
            shard = len(self._shards)
            self._shards.append(vectors)
            for row, key in enumerate(keys.tolist()):
                self._index[key] = (shard, row)

    def lookup(self, digests: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Find cached vectors.

        Args:
            digests: :func:`text_digest` of each text.

        Returns:
            ``(vectors, found)``: a ``(len(digests), dim)`` float32 array whose rows are
            filled where ``found`` (a bool array) is true and zero elsewhere.
        """
        self._refresh()
        vectors = np.zeros((len(digests), self.dim), dtype=np.float32)
        found = np.zeros(len(digests), dtype=bool)
        for i, digest in enumerate(digests):
            hit = self._index.get(digest)
            if hit is not None:
                vectors[i] = self._shards[hit[0]][hit[1]]
                found[i] = True
        return vectors, found

    # ----------------------------------------------------------------------------- writing

    def add(self, digests: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store vectors as one new shard; failures to write only log a warning.

        Args:
            digests: :func:`text_digest` of each text.
            vectors: ``(len(digests), dim)`` vectors in the same order.
        """
        if len(digests) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(digests), self.dim):
            raise ValueError(
                f"expected vectors of shape {(len(digests), self.dim)}, got {vectors.shape}"
            )
        keys = np.asarray(list(digests), dtype=_DIGEST_DTYPE)
        try:
            path = self._write_shard(keys, vectors)
        except OSError as exc:
            logger.warning("cannot write the vector cache in %s: %s", self.directory, exc)
            return
        self._loaded.add(path.name)
        shard = len(self._shards)
        self._shards.append(vectors)
        for row, key in enumerate(keys.tolist()):
            self._index[key] = (shard, row)

    def _write_shard(self, keys: np.ndarray, vectors: np.ndarray) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_description()
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        final = self.directory / name
        self._atomic_write(final, lambda f: np.savez(f, keys=keys, vectors=vectors))
        return final

    def _write_description(self) -> None:
        path = self.directory / "key.json"
        if path.exists():
            return
        text = json.dumps(self.description, indent=2, sort_keys=True).encode()
        self._atomic_write(path, lambda f: f.write(text))

    def _atomic_write(self, final: Path, write: Callable[[BinaryIO], object]) -> None:
        tmp = self.directory / f"{_TMP_PREFIX}{uuid.uuid4().hex}-{final.name}"
        try:
            with open(tmp, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)  # readers see the whole file or nothing
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def compact(self, max_shards: int = MAX_SHARDS) -> None:
        """Merge every shard into one when there are more than ``max_shards``.

        The merged shard is in place before the old ones are removed, so a concurrent reader
        sees each vector at all times (at worst twice). Unreadable shards are removed too.
        """
        files = self._shard_files()
        if len(files) <= max_shards:
            return
        self._refresh()
        merged = [name.name for name in files if name.name in self._loaded]
        if not self._index:
            return
        keys = np.asarray(list(self._index), dtype=_DIGEST_DTYPE)
        vectors = np.stack([self._shards[s][r] for s, r in self._index.values()])
        try:
            path = self._write_shard(keys, vectors)
        except OSError as exc:
            logger.warning("cannot merge the vector cache in %s: %s", self.directory, exc)
            return
        for name in merged:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()
        self._remove_stale_tmp()
        self._loaded = {path.name}
        self._shards = [vectors]
        self._index = {key: (0, row) for row, key in enumerate(keys.tolist())}

    def _remove_stale_tmp(self) -> None:
        # Left behind only by a process killed mid-write; old enough that no writer owns it.
        cutoff = time.time() - _STALE_TMP_SECONDS
        for path in self.directory.glob(f"{_TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    def clear(self) -> None:
        """Delete every cached vector of this model key."""
        for path in self._shard_files():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._loaded.clear()
        self._shards.clear()
        self._index.clear()


def encode_texts(
    encoder: ItemTextEncoder,
    texts: Sequence[str],
    *,
    cache: bool | None = None,
    cache_dir: str | Path | None = None,
    show_progress: bool = False,
) -> np.ndarray:
    """Encode texts, taking what is already cached from disk and caching the rest.

    Only texts missing from the cache reach ``encoder.encode`` (each distinct text once), in
    chunks that are written to the cache as they finish, so an interrupted run resumes.

    Args:
        encoder: The encoder.
        texts: The texts, possibly repeated.
        cache: Use the disk cache; ``None`` follows ``encoder.config.cache``.
        cache_dir: The cache root (see :func:`lmrec.data.cache.cache_root`).
        show_progress: Show a progress bar over the texts that need encoding.

    Returns:
        ``(len(texts), dim)`` float32 vectors in the order of ``texts``.
    """
    texts = list(texts)
    use_cache = encoder.config.cache if cache is None else cache
    if not use_cache or not texts:
        return encoder.encode(texts, show_progress=show_progress)
    position: dict[str, int] = {}
    for text in texts:
        position.setdefault(text, len(position))
    distinct = list(position)
    digests = [text_digest(t) for t in distinct]
    store = VectorCache.for_encoder(encoder, cache_dir)
    vectors, found = store.lookup(digests)
    missing = np.flatnonzero(~found)
    if len(missing):
        logger.info("encoding %d of %d distinct texts", len(missing), len(distinct))
        chunk = encoder.config.batch_size * CHUNK_BATCHES
        with tqdm(
            total=len(missing), desc="encoding", unit="text", disable=not show_progress
        ) as bar:
            for start in range(0, len(missing), chunk):
                rows = missing[start : start + chunk]
                new = encoder.encode([distinct[i] for i in rows])
                vectors[rows] = new
                store.add([digests[i] for i in rows], new)
                bar.update(len(rows))
        store.compact()
    index = np.fromiter((position[t] for t in texts), dtype=np.int64, count=len(texts))
    return vectors[index]


def item_texts(dataset: Dataset, fields: Sequence[str] | None = None) -> list[str]:
    """Each item's text (``"title: Alien (1979); genres: Horror, Sci-Fi"``) in item-map order.

    Args:
        dataset: The dataset.
        fields: Item columns to show, in order; ``None`` uses ``dataset.text_fields``.

    Raises:
        ConfigError: A field is not a column of the items table.
    """
    fields = tuple(fields) if fields is not None else dataset.text_fields
    columns = list(dataset.items.columns)
    for f in fields:
        if f not in columns:
            shown = ", ".join(c for c in columns if c != ITEM)
            raise ConfigError(f"fields: {f!r} is not an item column of {dataset.name!r} ({shown})")
    used = list(dict.fromkeys([*fields, *([CATEGORIES] if CATEGORIES in columns else [])]))
    return [format_item_text(row, fields) for _, row in dataset.items[used].iterrows()]


def encode_items(
    dataset: Dataset,
    encoder: ItemTextEncoder,
    fields: Sequence[str] | None = None,
    *,
    cache: bool | None = None,
    cache_dir: str | Path | None = None,
    show_progress: bool = False,
) -> np.ndarray:
    """Encode every item's text, row ``i`` being the item with index ``i`` in ``item_map()``.

    Args:
        dataset: The dataset whose catalog is encoded.
        encoder: The encoder.
        fields: Item columns in the text; ``None`` uses ``encoder.config.fields``, else the
            dataset's ``text_fields``.
        cache: Use the disk cache; ``None`` follows ``encoder.config.cache``.
        cache_dir: The cache root (see :func:`lmrec.data.cache.cache_root`).
        show_progress: Show a progress bar over the texts that need encoding.

    Returns:
        ``(n_items, dim)`` float32 vectors.
    """
    chosen = fields if fields is not None else encoder.config.fields
    texts = item_texts(dataset, chosen)
    return encode_texts(
        encoder, texts, cache=cache, cache_dir=cache_dir, show_progress=show_progress
    )
