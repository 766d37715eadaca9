"""Shared fixtures: a small synthetic dataset in MovieLens-100K format, written per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lmrec.data.loaders.movielens import ML100K_GENRES

GENRES = list(ML100K_GENRES)


def write_movielens_like(
    directory: Path, n_users: int = 40, n_items: int = 60, seed: int = 0
) -> Path:
    """Write u.data / u.item / u.genre / u.user with two taste groups, for end-to-end tests.

    Even users watch mostly items 1..n/2 (Action), odd users mostly the rest (Romance),
    in a fixed per-group order, so sequential and co-occurrence models have signal to learn.
    """
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    half = n_items // 2
    lines = []
    for u in range(1, n_users + 1):
        group = u % 2
        pool = np.arange(1, half + 1) if group == 0 else np.arange(half + 1, n_items + 1)
        start = int(rng.integers(0, 5))
        seq = list(pool[start : start + 12])
        if rng.random() < 0.5:
            seq.insert(3, int(rng.integers(1, n_items + 1)))
        for t, item in enumerate(dict.fromkeys(seq)):
            rating = int(rng.integers(1, 6))
            lines.append(f"{u}\t{item}\t{rating}\t{880000000 + 1000 * t + u}")
    (directory / "u.data").write_text("\n".join(lines) + "\n")
    items = []
    for i in range(1, n_items + 1):
        flags = ["0"] * 19
        flags[1 if i <= half else 14] = "1"
        kind = "Action" if i <= half else "Love"
        items.append(
            f"{i}|{kind} Film {i} (19{50 + i % 50})|01-Jan-1995||http://x|" + "|".join(flags)
        )
    (directory / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (directory / "u.genre").write_text("\n".join(f"{g}|{j}" for j, g in enumerate(GENRES)) + "\n")
    users = [
        f"{u}|{20 + u % 30}|{'M' if u % 2 else 'F'}|student|0{u:04d}" for u in range(1, n_users + 1)
    ]
    (directory / "u.user").write_text("\n".join(users) + "\n")
    return directory


@pytest.fixture(scope="session")
def movielens_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_movielens_like(tmp_path_factory.mktemp("data") / "tiny-ml")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real datasets (``LMREC_DATA_DIR``); tests that need them skip without them."""
    value = os.environ.get("LMREC_DATA_DIR")
    if not value or not (Path(value) / "ml-100k" / "u.data").exists():
        pytest.skip("LMREC_DATA_DIR does not point at the shared datasets")
    return Path(value)


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests never write into the user's real cache directory.
    monkeypatch.setenv("LMREC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    # The tests run tiny models: a second intra-op thread only adds hand-over waits (about
    # 3-8x slower on a loaded 2-core machine). Benchmarks, not tests, measure speed.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
