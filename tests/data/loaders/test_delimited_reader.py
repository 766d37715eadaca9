"""The delimited-text reader: fast and slow parses agree, and errors name file, line, column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lmrec.data.loaders.delimited import (
    Field,
    ParsedTable,
    parse_delimited,
    read_csv_table,
    read_text,
)
from lmrec.errors import DataError

FIELDS = (Field("user"), Field("item"), Field("rating", "float"), Field("time", "int"))


def parse(text: str, sep: str = "\t", skip: int = 0) -> ParsedTable:
    return parse_delimited(text, Path("f.txt"), FIELDS, sep=sep, skip_lines=skip)


def test_parses_types_and_line_numbers() -> None:
    table = parse("1\ta\t4.5\t100\n2\tb\t3\t200\n")
    assert table.frame["user"].tolist() == ["1", "2"]
    assert table.frame["rating"].tolist() == [4.5, 3.0]
    assert table.frame["time"].dtype == np.int64
    assert [table.line_of(i) for i in range(2)] == [1, 2]


def test_blank_lines_are_skipped_but_counted() -> None:
    table = parse("h\n1\ta\t4\t1\n\n2\tb\t3\t2\r\n", skip=1)
    assert len(table) == 2
    assert [table.line_of(i) for i in range(2)] == [2, 4]


def test_multi_character_separator() -> None:
    table = parse("1::a::5::7\n2::b::1::8\n", sep="::")
    assert table.frame["item"].tolist() == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "line", "column", "needle"),
    [
        ("1\ta\t4\t1\n2\tb\t3\t2\n3\tc\t3\tabc\n", 3, "time", "'abc'"),
        ("1\ta\t4\t1\n2\tb\tfive\t2\n", 2, "rating", "'five'"),
        ("1\ta\t4\t1\n2\tb\tnan\t2\n", 2, "rating", "'nan'"),
        ("1\ta\t4\t1.5\n", 1, "time", "'1.5'"),
        ("1\ta\t4\t99999999999999999999\n", 1, "time", "99999999999999999999"),
    ],
)
def test_bad_values_name_line_column_and_value(
    text: str, line: int, column: str, needle: str
) -> None:
    with pytest.raises(DataError) as info:
        parse(text)
    err = info.value
    assert (err.line, err.column) == (line, column)
    assert needle in str(err) and "f.txt" in str(err)


@pytest.mark.parametrize(
    ("text", "line", "found"),
    [
        ("1\ta\t4\t1\n2\tb\t3\n", 2, 3),  # short line: pandas would pad it silently
        ("1\ta\t4\t1\n2\tb\t3\t2\t9\n", 2, 5),
        ("1\ta\t4\t1\t9\n2\tb\t3\t2\n", 1, 5),
        ("1\ta\t4\t1\n\n\n2\tb\t3\n", 4, 3),
    ],
)
def test_wrong_field_count_names_the_line(text: str, line: int, found: int) -> None:
    with pytest.raises(DataError, match=f"expected 4 fields.*found {found}") as info:
        parse(text)
    assert info.value.line == line


def test_integral_decimals_are_integers() -> None:
    assert parse("1\ta\t4\t3.0\n").frame["time"].tolist() == [3]


def test_empty_file() -> None:
    with pytest.raises(DataError, match="file is empty"):
        parse("\n\n")


def test_decode_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"ok\nstill ok\nbad \xff here\n")
    with pytest.raises(DataError, match=r"x\.txt:3: cannot decode byte b'\\xff' at character 5"):
        read_text(path)
    assert read_text(path, ("utf-8", "latin-1")).splitlines()[2] == "bad \xff here"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_text(tmp_path / "nope.txt")


def test_csv_quoted_newlines_keep_physical_line_numbers() -> None:
    text = 'a,b\n1,"two\nlines"\n3,4\n'
    table = read_csv_table(text, Path("t.csv"), sep=",")
    assert table.frame["b"].tolist() == ["two\nlines", "4"]
    assert table.line_of(1) == 4


@pytest.mark.parametrize(
    ("text", "line"),
    [("a,b\n1,2\n3\n", 3), ("a,b\n1,2\n3,4,5\n", 3), ('a,b\n"x\ny",2\n3,4,5\n', 4)],
)
def test_csv_wrong_field_count(text: str, line: int) -> None:
    with pytest.raises(DataError, match="expected 2 fields") as info:
        read_csv_table(text, Path("t.csv"), sep=",")
    assert info.value.line == line


def big_text(n: int) -> list[str]:
    return [f"{i % 97}\titem{i % 13}\t{i % 5}\t{1000 + i}" for i in range(n)]


def test_error_deep_in_a_large_file_is_located() -> None:
    lines = big_text(80_000)  # about 1.6 MB: the bisection narrows it before the line scan
    lines[71_234] = lines[71_234].rsplit("\t", 1)[0] + "\tlate"
    with pytest.raises(DataError, match="expected an integer, got 'late'") as info:
        parse("\n".join(lines) + "\n")
    assert info.value.line == 71_235


def test_lenient_value_early_and_real_error_late() -> None:
    lines = big_text(80_000)
    lines[1] = "1\ta\t4\t3.0"  # the fast reader rejects it, the reference parse accepts it
    lines[79_000] = "1\ta\t4"
    with pytest.raises(DataError, match="expected 4 fields") as info:
        parse("\n".join(lines) + "\n")
    assert info.value.line == 79_001
    del lines[79_000]
    table = parse("\n".join(lines) + "\n")
    assert table.frame["time"].iloc[1] == 3 and len(table) == 79_999
