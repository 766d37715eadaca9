"""Saving and loading a :class:`~lmrec.index.VectorIndex`: data files plus an atomic manifest.

A save writes ``faiss-<token>.bin`` (the serialised faiss index) and ``ids-<token>.json``
(the item id of every row, ``null`` for dead rows) under fresh names, then replaces
``index.json`` (the manifest that names them) by a rename.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lmrec.errors import ModelFileError
from lmrec.index._backend import _faiss
from lmrec.index._config import IndexConfig

if TYPE_CHECKING:
    from lmrec.index._index import VectorIndex

MANIFEST_FILE = "index.json"
FORMAT_VERSION = 1


def save_index(index: VectorIndex, directory: str | Path) -> None:
    """Write ``index`` to ``directory`` atomically; see :meth:`VectorIndex.save`."""
    faiss = _faiss()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with index._rw.read():
        blob = (
            faiss.serialize_index(index._index)
            if index._index is not None
            else np.zeros(0, dtype=np.uint8)
        )
        row_ids = list(index._row_ids)
        manifest_kind = index._kind
    token = secrets.token_hex(6)
    files = {"faiss": f"faiss-{token}.bin", "ids": f"ids-{token}.json"}
    _write_durably(directory / files["faiss"], np.asarray(blob).tobytes())
    _write_durably(directory / files["ids"], json.dumps(row_ids).encode())
    manifest = {
        "format": FORMAT_VERSION,
        "dim": index.dim,
        "kind": manifest_kind,
        "rows": len(row_ids),
        "items": sum(i is not None for i in row_ids),
        "config": index.config.model_dump(),
        "files": files,
    }
    tmp = directory / f".{MANIFEST_FILE}.{token}.tmp"
    _write_durably(tmp, json.dumps(manifest, indent=2).encode())
    os.replace(tmp, directory / MANIFEST_FILE)
    _fsync_dir(directory)
    for old in directory.iterdir():
        if old.name not in files.values() and (
            (old.name.startswith("faiss-") and old.suffix == ".bin")
            or (old.name.startswith("ids-") and old.suffix == ".json")
        ):
            old.unlink(missing_ok=True)


def load_index(
    cls: type[VectorIndex],
    directory: str | Path,
    config: IndexConfig | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> VectorIndex:
    """Read an index written by :func:`save_index`; see :meth:`VectorIndex.load`."""
    faiss = _faiss()
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not path.exists():
        raise ModelFileError(f"{directory} holds no vector index (no {MANIFEST_FILE})")
    try:
        manifest = json.loads(path.read_text())
        version = manifest["format"]
        files = manifest["files"]
        dim = int(manifest["dim"])
        kind = manifest["kind"]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} is not a vector index manifest: {exc}") from None
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path}: unsupported index format {version!r}")
    if kind not in ("flat", "hnsw"):
        raise ModelFileError(f"{path}: unknown index kind {kind!r}")
    try:
        row_ids = json.loads((directory / files["ids"]).read_text())
        blob = np.fromfile(directory / files["faiss"], dtype=np.uint8)
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{directory}: cannot read the index files: {exc}") from None
    index = cls(dim, manifest["config"] if config is None else config, **overrides)
    if len(blob):
        faiss_index = faiss.deserialize_index(blob)
        if faiss_index.d != dim or faiss_index.ntotal != len(row_ids):
            raise ModelFileError(
                f"{directory}: the faiss index holds {faiss_index.ntotal} {faiss_index.d}-d "
                f"vectors, the manifest {len(row_ids)} {dim}-d"
            )
        if kind == "hnsw":
            faiss_index.hnsw.efSearch = index.config.ef_search
        index._index = faiss_index
    elif row_ids:
        raise ModelFileError(f"{directory}: ids without a faiss index")
    index._kind = kind
    index._row_ids = [None if i is None else str(i) for i in row_ids]
    index._rows = {i: r for r, i in enumerate(index._row_ids) if i is not None}
    index._live = np.array([i is not None for i in index._row_ids], dtype=bool)
    index._refresh_selector()
    return index


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
