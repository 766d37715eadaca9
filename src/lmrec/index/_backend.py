"""The lazy faiss import: faiss is loaded only when an index is built, searched or loaded."""

from __future__ import annotations

from typing import Any

from lmrec.errors import ConfigError


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "the vector index needs faiss: pip install 'lmrec[serve]' (faiss-cpu)"
        ) from exc
    return faiss


def faiss_available() -> bool:
    """Whether faiss can be imported (the ``serve`` extra is installed)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True
