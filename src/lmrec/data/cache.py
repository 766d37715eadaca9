"""The cache directory, and parsed datasets kept there as Parquet so a reload skips parsing.

The cache root is the ``cache_dir`` argument, else ``$LMREC_CACHE_DIR``, else
``$XDG_CACHE_HOME/lmrec``, else ``~/.cache/lmrec``. Downloads go to ``<root>/datasets/<name>``;
parsed datasets to ``<root>/parsed/<key>``, one entry per source (a directory, a file, a
table mapping). An entry records the size and modification time of every source file and is
used only while they all still match; otherwise the source is parsed again and the entry
replaced. A broken or unreadable entry is ignored, never an error.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from lmrec.data.schema import CATEGORIES, Dataset

logger = logging.getLogger(__name__)

#: Bump when the loaders' output changes, so entries written by older code are not used.
CACHE_FORMAT_VERSION = 1
_META = "meta.json"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The lmrec cache directory (not created here)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if value := os.environ.get("LMREC_CACHE_DIR"):
        return Path(value).expanduser()
    if value := os.environ.get("XDG_CACHE_HOME"):
        return Path(value).expanduser() / "lmrec"
    return Path.home() / ".cache" / "lmrec"


def file_stamp(files: Sequence[Path]) -> list[list[object]]:
    """``[path, size, mtime_ns]`` of each file, the fingerprint an entry is checked against."""
    stamp: list[list[object]] = []
    for path in sorted(files):
        info = path.stat()
        stamp.append([str(path.resolve()), info.st_size, info.st_mtime_ns])
    return stamp


class ParsedDatasetCache:
    """Parsed datasets stored as Parquet under ``<root>/parsed``.

    Args:
        root: The cache root, see :func:`cache_root`.
    """

    def __init__(self, root: Path) -> None:
        self.directory = root / "parsed"

    def load_or_build(
        self, source: str, files: Sequence[Path], build: Callable[[], Dataset]
    ) -> Dataset:
        """Return the cached dataset for ``source`` if ``files`` are unchanged, else build it.

        Args:
            source: Identifies the source and how it is read (loader, path, options).
            files: Every file the loader reads; a change to any of them invalidates the entry.
            build: Parses the source; its errors propagate unchanged.
        """
        entry = self.directory / hashlib.sha256(source.encode()).hexdigest()[:32]
        stamp = file_stamp(files)
        cached = self._read(entry, source, stamp)
        if cached is not None:
            return cached
        dataset = build()
        if file_stamp(files) == stamp:  # a file changed while we read it: do not keep the result
            self._write(entry, source, stamp, dataset)
        return dataset

    def _read(self, entry: Path, source: str, stamp: list[list[object]]) -> Dataset | None:
        try:
            meta = json.loads((entry / _META).read_text())
            if (
                meta.get("version") != CACHE_FORMAT_VERSION
                or meta.get("source") != source
                or meta.get("stamp") != stamp
            ):
                return None
            interactions = pd.read_parquet(entry / "interactions.parquet")
            items = pd.read_parquet(entry / "items.parquet")
            items[CATEGORIES] = pd.Series(
                [tuple(str(c) for c in cats) for cats in items[CATEGORIES]],
                dtype=object,
                index=items.index,
            )
            users = pd.read_parquet(entry / "users.parquet") if meta["has_users"] else None
            return Dataset(
                name=str(meta["name"]),
                interactions=interactions,
                items=items,
                users=users,
                text_fields=tuple(meta["text_fields"]),
            )
        except FileNotFoundError:
            return None
        except Exception as exc:  # a damaged entry must never break loading
            logger.warning("ignoring unreadable dataset cache entry %s: %s", entry, exc)
            return None

    def _write(self, entry: Path, source: str, stamp: list[list[object]], dataset: Dataset) -> None:
        meta = {
            "version": CACHE_FORMAT_VERSION,
            "source": source,
            "stamp": stamp,
            "name": dataset.name,
            "text_fields": list(dataset.text_fields),
            "has_users": dataset.users is not None,
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=self.directory))
        except OSError as exc:
            logger.warning("cannot write the dataset cache in %s: %s", self.directory, exc)
            return
        try:
            dataset.interactions.to_parquet(tmp / "interactions.parquet", index=False)
            items = dataset.items.copy()
            items[CATEGORIES] = items[CATEGORIES].map(list)
            items.to_parquet(tmp / "items.parquet", index=False)
            if dataset.users is not None:
                dataset.users.to_parquet(tmp / "users.parquet", index=False)
            (tmp / _META).write_text(json.dumps(meta))
            # Replace the old entry; if another process wins the race, its entry is as good.
            shutil.rmtree(entry, ignore_errors=True)
            try:
                os.replace(tmp, entry)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not entry.is_dir():
                    raise
                logger.debug("dataset cache entry %s was written by another process", entry)
        except Exception as exc:  # e.g. a column of mixed types Parquet cannot hold
            logger.warning("not caching dataset %r: %s", dataset.name, exc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
