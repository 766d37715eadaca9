"""New item records: validation, JSONL/CSV files, and text in the catalog's layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmrec.errors import DataError
from lmrec.items import NewItem, item_text, parse_items, read_items_file, text_layout

ML_TEXTS = [
    "title: Toy Story (1995); genres: Animation, Children's, Comedy",
    "title: GoldenEye (1995); genres: Action, Adventure, Thriller",
    "title: Four Rooms (1995); genres: Thriller",
    "title: Unknown (1998)",
]
AMAZON_TEXTS = ["text: eSUN PLA filament 1.75mm. Industrial & Scientific. eSUN."] * 3


def test_records_become_items_with_ids_as_strings() -> None:
    items = parse_items(
        [
            {"id": 1683, "title": "  Dune:  Part Two (2024) ", "categories": ["Sci-Fi", " "]},
            {"item_id": "b2", "description": "A spool of filament"},
            NewItem("c3", title="Kept as is"),
        ]
    )
    assert items[0] == NewItem("1683", title="Dune: Part Two (2024)", categories=("Sci-Fi",))
    assert items[1] == NewItem("b2", text="A spool of filament")
    assert items[1].display_title == "A spool of filament"  # no title: the text shows
    assert items[2].item_id == "c3"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"title": "no id"}, r"item 1: id must be a non-empty string, got None"),
        ({"id": "  ", "title": "x"}, r"id must be a non-empty string, got '  '"),
        ({"id": 1.5, "title": "x"}, r"id must be a non-empty string, got 1.5"),
        ({"id": "a"}, r"item 'a' needs a non-empty title or text"),
        ({"id": "a", "title": "   ", "text": ""}, r"needs a non-empty title or text"),
        ({"id": "a", "title": 3}, r"title must be a string, got int 3"),
        ({"id": "a", "title": "x", "categories": "Sci-Fi"}, r"categories must be a list"),
        ({"id": "a", "title": "x", "categories": [1]}, r"categories must be a list"),
        ({"id": "a", "titel": "x"}, r"unknown field 'titel'"),
        ({"id": "a", "text": "x", "description": "y"}, r"both 'text' and 'description'"),
        ("just a string", r"expected an object"),
    ],
)
def test_bad_records_name_the_field_and_value(record: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_items([record])  # type: ignore[list-item]


def test_duplicate_ids_in_one_call_raise() -> None:
    with pytest.raises(DataError, match=r"item 3: duplicate item id 'a' \(first at item 1\)"):
        parse_items(
            [{"id": "a", "title": "x"}, {"id": "b", "title": "y"}, {"id": "a", "title": "z"}]
        )


def test_layout_is_read_from_the_catalog_texts() -> None:
    assert text_layout(ML_TEXTS) == ("title", "genres")
    assert text_layout(AMAZON_TEXTS) == ("text",)
    assert text_layout([]) == ("title",)
    assert text_layout(["no labels at all", "plain"]) == ("title",)


def test_item_text_follows_the_layout() -> None:
    movie = NewItem("n1", title="Dune: Part Two (2024)", categories=("Action", "Sci-Fi"))
    assert item_text(movie, ("title", "genres")) == (
        "title: Dune: Part Two (2024); genres: Action, Sci-Fi"
    )
    described = NewItem("n2", title="Toy Story 4 (2019)", text="Woody goes on a road trip.")
    assert item_text(described, ("title", "genres")) == (
        "title: Toy Story 4 (2019); description: Woody goes on a road trip."
    )
    product = NewItem("p1", title="eSUN PLA filament", text="Spool of 1 kg", categories=("3D",))
    assert item_text(product, ("text",)) == (
        "text: eSUN PLA filament. Spool of 1 kg; categories: 3D"
    )
    assert item_text(NewItem("p2", text="Only a text"), ("title",)) == "description: Only a text"


def test_reads_jsonl_and_csv(tmp_path: Path) -> None:
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text(
        '{"id": "n1", "title": "Dune (2021)", "categories": ["Sci-Fi"]}\n\n'
        '{"id": "n2", "title": "Up (2009)", "text": "A house flies"}\n'
    )
    assert [i.item_id for i in read_items_file(jsonl)] == ["n1", "n2"]
    csv = tmp_path / "items.csv"
    csv.write_text(
        'id,title,text,categories\nn1,"Dune, Part One (2021)",,Sci-Fi|Adventure\n'
        'n2,Up (2009),"A house\nflies",\n'
    )
    items = read_items_file(csv)
    assert items[0] == NewItem(
        "n1", title="Dune, Part One (2021)", categories=("Sci-Fi", "Adventure")
    )
    assert items[1] == NewItem("n2", title="Up (2009)", text="A house flies")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.jsonl", '{"id": "n1", "title": "x"}\n{"id": "n2"\n', r"a.jsonl:2: not valid JSON"),
        ("b.jsonl", '{"id": "n1", "title": "x"}\n\n{"id": "n1", "title": "y"}\n', r"b.jsonl:3"),
        ("c.jsonl", '{"id": "n1", "title": 5}\n', r"c.jsonl:1, column 'title': .*got int 5"),
        ("d.csv", "id,name\nn1,x\n", r"d.csv:1, column 'name': unknown column 'name'"),
        ("e.csv", "id,title\n,x\n", r"e.csv:2, column 'id': id must be a non-empty"),
        ("f.txt", "id,title\n", r"expected a .jsonl or .csv file"),
        ("g.jsonl", "\n", r"holds no items"),
    ],
)
def test_bad_files_name_the_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_items_file(path)
    with pytest.raises(DataError, match="no such file"):
        read_items_file(tmp_path / "missing.jsonl")
