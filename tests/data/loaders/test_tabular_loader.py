"""CSV and Parquet tables with a column mapping, and the TableSource config model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydantic
import pytest

from lmrec.data.loaders.tabular import TableSource, load_table, load_table_source
from lmrec.data.schema import CATEGORIES, ITEM, RATING, TIME, USER
from lmrec.errors import DataError

EVENTS = "uid,iid,ts,stars\nu1,10,100,4\nu1,20,101,5\nu2,10,102,3\n"
ITEMS = 'sku,name,tags,blurb\n10,"Café, au lait",hot|drink,"a\nb"\n20,Tea,hot|leaf,\n'


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_mapping_items_and_users(tmp_path: Path) -> None:
    users = write(tmp_path / "users.csv", "uid,age\nu1,30\nu2,41\n")
    ds = load_table(
        write(tmp_path / "events.csv", EVENTS),
        user_col="uid",
        item_col="iid",
        time_col="ts",
        rating_col="stars",
        items_path=write(tmp_path / "items.csv", ITEMS),
        item_id_col="sku",
        text_cols=("name",),
        categories_col="tags",
        users_path=users,
        user_id_col="uid",
    )
    assert ds.name == "events"
    assert list(ds.interactions.columns) == [USER, ITEM, TIME, RATING]
    assert ds.interactions[TIME].tolist() == [100, 101, 102]
    assert ds.interactions[RATING].tolist() == [4.0, 5.0, 3.0]
    items = ds.items.set_index(ITEM)
    assert items.loc["10", "name"] == "Café, au lait"
    assert items.loc["10", CATEGORIES] == ("hot", "drink")
    assert ds.text_fields == ("name",)
    assert ds.users is not None and list(ds.users.columns) == [USER, "age"]


def test_default_text_columns_and_no_time(tmp_path: Path) -> None:
    ds = load_table(
        write(tmp_path / "e.csv", "user_id,item_id\na,10\nb,20\na,20\n"),
        items_path=write(tmp_path / "i.csv", ITEMS),
        item_id_col="sku",
        categories_col="tags",
    )
    assert ds.text_fields == ("name", "blurb")
    assert ds.interactions[TIME].tolist() == [0, 1, 2]
    assert ds.items.set_index(ITEM).loc["20", "blurb"] == ""


def test_tsv_and_datetime(tmp_path: Path) -> None:
    path = write(tmp_path / "e.tsv", "u\ti\twhen\na\tx\t2024-01-01T00:00:10Z\na\ty\t1970-01-02\n")
    ds = load_table(
        path, user_col="u", item_col="i", time_col="when", time_format="datetime", sep="\t"
    )
    assert ds.interactions[TIME].tolist() == [1704067210, 86400]


def test_parquet_round_trip_with_numeric_ids(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"user_id": [1, 1, 2], "item_id": [7, 8, 7], "timestamp": [5, 6, 7], "rating": [1.0, 2, 3]}
    )
    frame.to_parquet(tmp_path / "e.parquet")
    items = pd.DataFrame({"item_id": [7, 8], "title": ["A", "B"], "cats": [["x", "y"], []]})
    items.to_parquet(tmp_path / "i.parquet")
    ds = load_table(
        tmp_path / "e.parquet",
        time_col="timestamp",
        rating_col="rating",
        items_path=tmp_path / "i.parquet",
        categories_col="cats",
    )
    assert ds.interactions[USER].tolist() == ["1", "1", "2"]
    assert ds.items.set_index(ITEM).loc["7", CATEGORIES] == ("x", "y")
    assert ds.text_fields == ("title",)


def test_parquet_errors_name_row_and_column(tmp_path: Path) -> None:
    pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "t": ["1", "soon"]}).to_parquet(
        tmp_path / "e.parquet"
    )
    with pytest.raises(
        DataError, match=r"e\.parquet, column 't': row 2: expected a number, got 'soon'"
    ):
        load_table(tmp_path / "e.parquet", time_col="t")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot read as Parquet"):
        load_table(tmp_path / "broken.parquet")


@pytest.mark.parametrize(
    ("events", "line", "column", "needle"),
    [
        ("uid,iid\nu1,10\n", 1, "ts", "missing column 'ts'"),
        (
            "uid,iid,ts,stars\n" + "u1,10,1,4\n" * 5 + "u1,10,abc,4\n",
            7,
            "ts",
            "expected a number, got 'abc'",
        ),
        ("uid,iid,ts,stars\nu1,10,1,4\nu1,10,1.5,4\n", 3, "ts", "expected an integer, got '1.5'"),
        ("uid,iid,ts,stars\nu1,10,1,4\nu1,99,2,4\n", 3, "iid", "unknown item id '99'"),
        ("uid,iid,ts,stars\nu1,10,1,4\n,10,2,4\n", 3, "uid", "empty user id"),
        ("uid,iid,ts,stars\nu1,10,1,4\nu1,10,2\n", 3, None, "expected 4 fields"),
        ("uid,iid,ts,stars\nu1,10,1,4\nu1,10,2,4,9\n", 3, None, "expected 4 fields"),
    ],
)
def test_csv_errors(
    tmp_path: Path, events: str, line: int, column: str | None, needle: str
) -> None:
    path = write(tmp_path / "e.csv", events)
    with pytest.raises(DataError) as info:
        load_table(
            path,
            user_col="uid",
            item_col="iid",
            time_col="ts",
            items_path=write(tmp_path / "items.csv", ITEMS),
            item_id_col="sku",
        )
    err = info.value
    assert err.path == path
    assert (err.line, err.column) == (line, column)
    assert needle in str(err)


def test_items_and_users_errors(tmp_path: Path) -> None:
    events = write(tmp_path / "e.csv", "user_id,item_id\na,1\n")
    items = write(tmp_path / "i.csv", "item_id,title\n1,A\n2,B\n1,C\n")
    with pytest.raises(DataError, match=r"i\.csv:4.*duplicate item id '1' \(first on line 2\)"):
        load_table(events, items_path=items)
    items = write(tmp_path / "i.csv", "item_id,title\n1,A\n")
    with pytest.raises(DataError, match=r"missing column 'name'"):
        load_table(events, items_path=items, text_cols=("name",))
    users = write(tmp_path / "u.csv", "user_id,age\na,1\na,2\n")
    with pytest.raises(DataError, match=r"u\.csv:3.*duplicate user id 'a'"):
        load_table(events, users_path=users)


def test_encoding_and_empty_errors(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(b"user_id,item_id\na,1\nb,\xff\n")
    with pytest.raises(DataError, match=r"e\.csv:3: cannot decode"):
        load_table(path)
    path.write_text("")
    with pytest.raises(DataError, match="file is empty"):
        load_table(path)
    path.write_text("user_id,item_id\n")
    with pytest.raises(DataError, match="no data rows below the header"):
        load_table(path)


def test_table_source_validates_and_loads(tmp_path: Path) -> None:
    source = TableSource(path=write(tmp_path / "e.csv", EVENTS), user_col="uid", item_col="iid")
    assert load_table_source(source).n_users == 2
    assert TableSource.model_validate({"path": "x.csv", "sep": "\t"}).sep == "\t"
    with pytest.raises(pydantic.ValidationError, match="user_colum"):
        TableSource.model_validate({"path": "x.csv", "user_colum": "u"})
    assert "Column of the interactions file holding user ids" in (
        TableSource.model_fields["user_col"].description or ""
    )
