"""Splits: exact partitions, no leakage, stable ties, cold items/users, dispatch and encoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmrec.data.schema import ITEM, RATING, TIME, USER, Dataset
from lmrec.data.splitting import (
    Split,
    cold_item_split,
    cold_user_split,
    encode_split,
    implicit_feedback,
    leave_one_out_split,
    random_split,
    split_dataset,
    temporal_split,
)
from lmrec.errors import ConfigError, DataError


def frame(rows: list[tuple[str, str, int]], ratings: list[float] | None = None) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=[USER, ITEM, TIME])
    df[TIME] = df[TIME].astype(np.int64)
    if ratings is not None:
        df[RATING] = ratings
    return df


def random_frame(n_users: int, n_items: int, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return frame(
        [
            (f"u{rng.integers(n_users)}", f"i{rng.integers(n_items)}", int(rng.integers(0, 50)))
            for _ in range(n)
        ],
        ratings=list(rng.integers(1, 6, n).astype(float)),
    )


def assert_partition(split: Split, source: pd.DataFrame) -> None:
    parts = [split.train, split.valid, split.test]
    index = np.concatenate([p.index.to_numpy() for p in parts])
    assert sorted(index.tolist()) == list(range(len(source)))
    for part in parts:
        pd.testing.assert_frame_equal(part, source.loc[part.index])
        assert part.index.is_monotonic_increasing  # file order kept


def test_leave_one_out_basic_and_short_users() -> None:
    df = frame(
        [
            ("a", "1", 10),
            ("a", "2", 30),
            ("a", "3", 20),
            ("a", "4", 40),
            ("b", "1", 5),
            ("b", "2", 6),
            ("c", "9", 1),
        ]
    )
    split = leave_one_out_split(df)
    assert_partition(split, df)
    assert split.test[ITEM].tolist() == ["4", "2"]  # a's latest, b's latest
    assert split.valid[ITEM].tolist() == ["2"]  # a's second latest; b has no valid row
    assert sorted(split.train[USER].tolist()) == ["a", "a", "b", "c"]


def test_leave_one_out_ties_keep_file_order() -> None:
    df = frame([("a", "x", 5), ("a", "y", 5), ("a", "z", 5), ("a", "w", 1)])
    split = leave_one_out_split(df)
    assert split.test[ITEM].tolist() == ["z"]
    assert split.valid[ITEM].tolist() == ["y"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 9), st.integers(0, 6)), min_size=0, max_size=60
    )
)
def test_leave_one_out_properties(rows: list[tuple[int, int, int]]) -> None:
    df = frame([(f"u{u}", f"i{i}", t) for u, i, t in rows])
    split = leave_one_out_split(df)
    assert_partition(split, df)
    for user, group in df.groupby(USER, sort=False):
        # stable order of the user's rows: by time, ties by position in the file
        ordered = group.sort_values(TIME, kind="stable").index.tolist()
        test = split.test.index[split.test[USER] == user].tolist()
        valid = split.valid.index[split.valid[USER] == user].tolist()
        n = len(ordered)
        assert test == (ordered[-1:] if n >= 2 else [])
        assert valid == (ordered[-2:-1] if n >= 3 else [])
        train_times = df.loc[split.train.index[split.train[USER] == user], TIME]
        if test and len(train_times):
            assert df.loc[test[0], TIME] >= train_times.max()


def test_temporal_split_cuts_globally_and_ties_go_later() -> None:
    df = frame([(f"u{i % 3}", f"i{i}", t) for i, t in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 8, 8])])
    split = temporal_split(df, valid_frac=0.2, test_frac=0.1)
    assert_partition(split, df)
    assert split.test[TIME].tolist() == [8, 8, 8]  # the cut lands on a tie: all of it is test
    assert split.valid[TIME].tolist() == [6, 7]  # its share, counted back from the test part
    assert split.train[TIME].max() < split.valid[TIME].min()


def test_random_split_is_seeded() -> None:
    df = random_frame(10, 20, 200)
    a, b = random_split(df, 0.1, 0.2, seed=3), random_split(df, 0.1, 0.2, seed=3)
    assert_partition(a, df)
    assert a.test.index.equals(b.test.index)
    assert (len(a.valid), len(a.test)) == (20, 40)
    assert not a.test.index.equals(random_split(df, 0.1, 0.2, seed=4).test.index)


@pytest.mark.parametrize("warm", ["leave_one_out", "temporal"])
def test_cold_item_split(warm: str) -> None:
    df = random_frame(15, 40, 400, seed=1)
    split = cold_item_split(df, cold_frac=0.25, seed=2, warm_split=warm)  # type: ignore[arg-type]
    assert_partition(split, df)
    assert len(split.cold_items) == 10
    assert not set(split.train[ITEM]) & split.cold_items
    assert not set(split.valid[ITEM]) & split.cold_items
    cold_rows = df[df[ITEM].isin(list(split.cold_items))]
    assert set(cold_rows.index) <= set(split.test.index)  # every cold interaction is test
    again = cold_item_split(df, cold_frac=0.25, seed=2, warm_split=warm)  # type: ignore[arg-type]
    assert again.cold_items == split.cold_items and again.test.index.equals(split.test.index)


def test_cold_user_split_has_disjoint_users() -> None:
    df = random_frame(40, 20, 500, seed=5)
    split = cold_user_split(df, cold_frac=0.2, seed=1, valid_frac=0.1)
    assert_partition(split, df)
    train, valid, test = (set(p[USER]) for p in (split.train, split.valid, split.test))
    assert not train & valid and not train & test and not valid & test
    assert (len(test), len(valid)) == (8, 4)
    assert split.cold_users == valid | test


def test_implicit_feedback() -> None:
    df = frame([("a", "1", 1), ("a", "2", 2), ("b", "1", 3)], ratings=[5.0, 2.0, 4.0])
    assert implicit_feedback(df, 4)[ITEM].tolist() == ["1", "1"]
    assert len(implicit_feedback(df, None)) == 3
    with pytest.raises(DataError, match="no 'rating' column"):
        implicit_feedback(df.drop(columns=[RATING]), 3.5)


def dataset(df: pd.DataFrame) -> Dataset:
    items = pd.DataFrame({ITEM: sorted(df[ITEM].unique()), "title": "t"})
    items["categories"] = pd.Series([() for _ in range(len(items))], dtype=object)
    return Dataset(name="d", interactions=df, items=items)


def test_split_dataset_dispatch_and_errors() -> None:
    ds = dataset(random_frame(5, 8, 60))
    assert split_dataset(ds, "leave-one-out").name == "leave_one_out"
    assert split_dataset(ds, "temporal", test_frac=0.2).name == "temporal"
    with pytest.raises(ConfigError, match=r"unknown split method 'k-fold'.*leave_one_out"):
        split_dataset(ds, "k-fold")
    with pytest.raises(ConfigError, match="takes no parameter 'seed'"):
        split_dataset(ds, "temporal", seed=1)
    with pytest.raises(ConfigError, match="test_frac must be in"):
        split_dataset(ds, "random", test_frac=1.5)
    with pytest.raises(ConfigError, match="valid_frac \\+ test_frac"):
        split_dataset(ds, "random", valid_frac=0.5, test_frac=0.5)
    with pytest.raises(DataError, match="timestamp"):
        leave_one_out_split(ds.interactions.drop(columns=[TIME]))


def test_encode_split_tasks() -> None:
    df = frame([("a", "1", 1), ("a", "2", 2), ("a", "3", 3), ("b", "2", 1), ("b", "3", 2)])
    ds = dataset(df)
    encoded = encode_split(leave_one_out_split(df), ds)
    items, users = ds.item_map(), ds.user_map()
    valid = encoded.valid_task()
    assert valid.users.tolist() == [users.index("a")]
    assert valid.histories[0].tolist() == [items.index("1")]
    assert valid.targets[0].tolist() == [items.index("2")]
    test = encoded.test_task()
    assert test.users.tolist() == [users.index("a"), users.index("b")]
    assert test.histories[0].tolist() == [items.index("1"), items.index("2")]
    assert test.targets[1].tolist() == [items.index("3")]
    assert test.n_items == 3 and len(encoded.train_and_valid()) == 3
