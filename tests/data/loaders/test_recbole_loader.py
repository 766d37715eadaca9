"""RecBole atomic files: headers, field mapping, optional item/user files, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmrec.data.loaders.recbole import load_recbole
from lmrec.data.schema import CATEGORIES, ITEM, RATING, TIME, USER
from lmrec.errors import DataError

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "u1\ti1\t4\t881250949.0\n"
    "u1\ti2\t3.5\t881250950.7\n"
    "u2\ti1\t5\t881250951\n"
)
ITEMS = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\tprice:float\n"
    "i1\tToy Story\t1995\tAnimation Comedy\t9.5\n"
    "i2\tHeat\t1995\tAction Crime Thriller\t\n"
)


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_full_atomic_set(tmp_path: Path) -> None:
    users = "user_id:token\tage:float\tgender:token\nu1\t24\tM\nu2\t31\tF\n"
    directory = write(tmp_path, {"ml.inter": INTER, "ml.item": ITEMS, "ml.user": users})
    ds = load_recbole(directory)
    assert ds.name == "ml"
    inter = ds.interactions
    assert list(inter.columns) == [USER, ITEM, TIME, RATING]
    assert inter[TIME].tolist() == [881250949, 881250950, 881250951]  # floats rounded down
    assert inter[RATING].tolist() == [4.0, 3.5, 5.0]
    assert ds.text_fields == ("movie_title", "release_year")
    items = ds.items.set_index(ITEM)
    assert items.loc["i2", CATEGORIES] == ("Action", "Crime", "Thriller")
    assert items.loc["i1", "price"] == 9.5
    assert ds.item_text("i1") == (
        "movie_title: Toy Story; release_year: 1995; categories: Animation, Comedy"
    )
    assert ds.users is not None and ds.users["age"].tolist() == [24.0, 31.0]


def test_without_item_file_and_timestamp(tmp_path: Path) -> None:
    inter = "user_id:token\titem_id:token\nu1\tb\nu1\ta\nu2\tb\n"
    ds = load_recbole(write(tmp_path, {"x.inter": inter}), name="mine")
    assert ds.name == "mine"
    assert ds.items[ITEM].tolist() == ["b", "a"]  # order of first appearance
    assert ds.text_fields == ()
    assert ds.interactions[TIME].tolist() == [0, 1, 2]  # file order
    assert RATING not in ds.interactions.columns


@pytest.mark.parametrize(
    ("inter", "line", "column", "needle"),
    [
        ("user_id\titem_id:token\nu\ti\n", 1, "user_id", "not of the form name:type"),
        ("user_id:token\titem_id:blob\nu\ti\n", 1, "item_id", "unknown field type 'blob'"),
        ("user_id:token\trating:float\nu\t1\n", 1, "item_id", "missing required field"),
        ("user_id:token\titem_id:token\titem_id:token\n", 1, "item_id", "appears twice"),
        (
            "user_id:token\titem_id:token\ttimestamp:float\nu\ti1\t1\nu\ti1\tsoon\n",
            3,
            "timestamp",
            "expected a number, got 'soon'",
        ),
        ("user_id:token\titem_id:token\nu\ti1\nu\ti1\textra\n", 3, None, "expected 2 fields"),
        (
            "user_id:token\titem_id:token\nu\ti1\nu\ti9\n",
            3,
            "item_id",
            "unknown item id 'i9', not in d.item",
        ),
    ],
)
def test_inter_errors(
    tmp_path: Path, inter: str, line: int, column: str | None, needle: str
) -> None:
    directory = write(tmp_path, {"d.inter": inter, "d.item": ITEMS.replace("i2", "i1x")})
    with pytest.raises(DataError) as info:
        load_recbole(directory)
    err = info.value
    assert err.path == directory / "d.inter"
    assert (err.line, err.column) == (line, column)
    assert needle in str(err)


def test_item_file_errors(tmp_path: Path) -> None:
    dup = ITEMS + "i1\tAgain\t2000\tDrama\t1\n"
    directory = write(tmp_path / "a", {"d.inter": INTER, "d.item": dup})
    with pytest.raises(DataError, match=r"d\.item:4.*duplicate item id 'i1' \(first on line 2\)"):
        load_recbole(directory)
    bad_price = ITEMS.replace("\t9.5", "\tcheap")
    directory = write(tmp_path / "b", {"d.inter": INTER, "d.item": bad_price})
    with pytest.raises(DataError, match=r"d\.item:2, column 'price': expected a number"):
        load_recbole(directory)


def test_header_only_and_encoding(tmp_path: Path) -> None:
    directory = write(tmp_path, {"d.inter": "user_id:token\titem_id:token\n"})
    with pytest.raises(DataError, match="no data lines"):
        load_recbole(directory)
    (directory / "d.inter").write_bytes(b"user_id:token\titem_id:token\nu\ti\nu\t\xc3\x28\n")
    with pytest.raises(DataError, match=r"d\.inter:3: cannot decode"):
        load_recbole(directory)


def test_prefix_detection(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no \*\.inter file"):
        load_recbole(tmp_path)
    write(tmp_path, {"a.inter": INTER, "b.inter": INTER})
    with pytest.raises(DataError, match="several"):
        load_recbole(tmp_path)
    assert load_recbole(tmp_path, "b").name == "b"
