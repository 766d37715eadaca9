"""The real shared datasets (skipped unless LMREC_DATA_DIR points at them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmrec.data.registry import load_dataset
from lmrec.data.schema import ITEM, USER
from lmrec.data.splitting import leave_one_out_split


def test_ml_100k(shared_data_dir: Path) -> None:
    ds = load_dataset("ml-100k", data_dir=shared_data_dir, download=False)
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (943, 1682, 100000)
    assert ds.items.set_index(ITEM).loc["1", "title"] == "Toy Story (1995)"
    assert ds.users is not None and len(ds.users) == 943


def _targets(path: Path, users: dict[str, str], items: dict[str, str]) -> dict[str, str]:
    lines = path.read_text().splitlines()[1:]
    out = {}
    for line in lines:
        user, _, target = line.split("\t")
        out[users[user]] = items[target]
    return out


def _index(path: Path) -> dict[str, str]:
    pairs = (line.split("\t") for line in path.read_text().splitlines())
    return {index: external for external, index in pairs}


def test_amazon_scientific_split_matches_the_given_one(shared_data_dir: Path) -> None:
    directory = shared_data_dir / "amazon-scientific"
    if not (directory / "Scientific.train.inter").exists():
        pytest.skip("amazon-scientific is not in LMREC_DATA_DIR")
    ds = load_dataset("amazon-scientific", data_dir=shared_data_dir, download=False)
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (8442, 4385, 59427)
    users = _index(directory / "Scientific.user2index")
    items = _index(directory / "Scientific.item2index")
    split = leave_one_out_split(ds.interactions)
    for part, frame in (("valid", split.valid), ("test", split.test)):
        given = _targets(directory / f"Scientific.{part}.inter", users, items)
        ours = dict(zip(frame[USER], frame[ITEM], strict=True))
        assert len(given) == 8442
        assert ours == given
