"""Helpers of the service tests: training tiny runs, an API client with keys, event batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lmrec.cli.main import main
from lmrec.service import RecommendationService, Store, create_app, create_key

TEXT_MODEL = 'type = "text_mean"'
"""Frozen MiniLM vectors, no training: the cheapest model that adds items and reads texts."""


def train_run(data_dir: Path, runs: Path, name: str, model: str, cache: Path) -> Path:
    config = runs / f"{name}.toml"
    runs.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'[data]\ndataset = "{data_dir}"\n\n[model]\n{model}\n\n'
        f'[run]\noutput_dir = "{runs}"\nname = "{name}"\nshow_progress = false\n'
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LMREC_CACHE_DIR", str(cache))
        assert main(["train", "--config", str(config)]) == 0
    return runs / name


class Api:
    """A test client with one key per scope."""

    def __init__(self, client: TestClient, service: RecommendationService) -> None:
        self.client = client
        self.service = service
        self.keys = {
            scope: create_key(service.store, scope).key for scope in ("read", "write", "admin")
        }

    def auth(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}


def make_api(store: Store, run: Path) -> Iterator[Api]:
    service = RecommendationService(store, run)
    with TestClient(create_app(service)) as client:
        yield Api(client, service)


def events(user: str, items: list[str], prefix: str = "e", start: float = 1.9e9) -> dict[str, Any]:
    """A ``POST /v1/events`` body: one view per item, a second apart."""
    return {
        "events": [
            {
                "event_id": f"{prefix}-{user}-{n}",
                "user_id": user,
                "item_id": i,
                "type": "view",
                "timestamp": start + n,
            }
            for n, i in enumerate(items)
        ]
    }
