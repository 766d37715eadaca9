"""The recommendation service: an HTTP API over a trained run, an event store, API keys.

Start it with ``lmrec serve <run>``; build it in code with::

    service = RecommendationService(Store("sqlite:///runs/service.db"), "runs/demo/sasrec")
    app = create_app(service)          # a FastAPI app; run it with uvicorn

FastAPI, SQLAlchemy and friends come with ``pip install lmrec[serve]``; importing
:mod:`lmrec` does not need them.
"""

from __future__ import annotations

from lmrec.service.app import create_app
from lmrec.service.auth import create_key, verify_key
from lmrec.service.loaded import LoadedModel, SimilarItemIndex
from lmrec.service.runtime import RecommendationService
from lmrec.service.store import DEFAULT_DATABASE_URL, Store

__all__ = [
    "DEFAULT_DATABASE_URL",
    "LoadedModel",
    "RecommendationService",
    "SimilarItemIndex",
    "Store",
    "create_app",
    "create_key",
    "verify_key",
]
