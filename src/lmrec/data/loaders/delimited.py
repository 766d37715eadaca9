"""Reading delimited text files fast, with errors that name the file, line, column and value.

Every loader reads its files through :func:`read_text` and :func:`parse_delimited`. Parsing runs
pyarrow's multi-threaded CSV reader first (a few seconds for the 10 million lines of
MovieLens-10M); when that fails, a plain line-by-line parse runs over the same text. The slow
parse is the reference: it raises a :class:`~lmrec.errors.DataError` naming the first bad
line, or, when it finds nothing wrong (pyarrow is stricter about, e.g., ``"3.0"`` as an
integer), its result is used. In a large file the fast reader first bisects its way to the
stretch of lines that holds the first failure, so the slow scan stays short.

Lines are split on ``"\\n"`` only (a trailing ``"\\r"`` is dropped) and empty lines are skipped,
as pyarrow does. Fields are never quoted: a quote character is part of the value.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.csv as pa_csv

from lmrec.errors import DataError

FieldKind = Literal["str", "int", "float"]

# Stands in for a multi-character separator such as "::", which pyarrow cannot split on.
_UNIT_SEPARATOR = "\x1f"
_PANDAS_DTYPES: dict[str, str] = {"str": "str", "int": "int64", "float": "float64"}
_ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
}
_INT64_LIMIT = 2**63


@dataclass(frozen=True)
class Field:
    """One column of a delimited file, in file order.

    Args:
        name: The column name in the parsed frame (also named in error messages).
        kind: ``"str"`` keeps the text as is; ``"int"`` and ``"float"`` must parse as such.
    """

    name: str
    kind: FieldKind = "str"


@dataclass(frozen=True)
class ParsedTable:
    """A parsed file: one frame row per data line, and where each row came from.

    Args:
        frame: The rows, one column per field.
        path: The file, named in errors.
        first_line: 1-based line of row 0 when rows map to consecutive lines.
        line_numbers: Per row, its 1-based line; ``None`` when ``first_line + row`` holds.
        rows_are_lines: ``False`` for binary tables (Parquet), whose errors name a row.
    """

    frame: pd.DataFrame
    path: Path
    first_line: int = 1
    line_numbers: np.ndarray | None = None
    rows_are_lines: bool = True

    def __len__(self) -> int:
        return len(self.frame)

    def line_of(self, row: int) -> int:
        """The 1-based line (or, for binary tables, row) that frame row ``row`` came from."""
        if self.line_numbers is not None:
            return int(self.line_numbers[row])
        return self.first_line + row

    def error(self, message: str, row: int, column: str | None = None) -> DataError:
        """A :class:`DataError` located at frame row ``row``."""
        if self.rows_are_lines:
            return DataError(message, path=self.path, line=self.line_of(row), column=column)
        return DataError(f"row {self.line_of(row)}: {message}", path=self.path, column=column)

    def first_bad(self, mask: np.ndarray | pd.Series) -> int | None:
        """The first row where ``mask`` is true, or ``None``."""
        hits = np.flatnonzero(np.asarray(mask, dtype=bool))
        return int(hits[0]) if len(hits) else None

    def require_nonempty(self, column: str, what: str) -> None:
        """Raise when a value of ``column`` is empty or only whitespace."""
        values = self.frame[column].astype(str)
        row = self.first_bad((values.str.len() == 0) | values.str.isspace())
        if row is not None:
            raise self.error(f"empty {what}", row, column)

    def require_unique(self, column: str, what: str) -> None:
        """Raise at the second occurrence of a repeated value of ``column``."""
        values = self.frame[column]
        row = self.first_bad(values.duplicated())
        if row is not None:
            value = values.iloc[row]
            first = self.first_bad(values == value)
            assert first is not None
            unit = "line" if self.rows_are_lines else "row"
            raise self.error(
                f"duplicate {what} {value!r} (first on {unit} {self.line_of(first)})", row, column
            )

    def require_known(self, column: str, known: Iterable[str], what: str, source: str) -> None:
        """Raise at the first value of ``column`` not in ``known`` (``source`` says where from)."""
        values = self.frame[column]
        unknown = ~values.isin(known if isinstance(known, pd.Index) else pd.Index(list(known)))
        row = self.first_bad(unknown)
        if row is not None:
            count = int(unknown.sum())
            more = f" ({count} rows in all)" if count > 1 else ""
            raise self.error(
                f"unknown {what} {values.iloc[row]!r}, not in {source}{more}", row, column
            )

    def as_float(self, column: str, *, allow_empty: bool = False) -> np.ndarray:
        """``column`` as finite float64 values (empty ones become NaN when ``allow_empty``)."""
        raw = self.frame[column]
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            values = raw.to_numpy(dtype=np.float64)
            empty = np.isnan(values) if allow_empty else np.zeros(len(values), dtype=bool)
        else:
            text = raw.astype(str).str.strip()
            values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
            empty = (text == "").to_numpy() if allow_empty else np.zeros(len(values), dtype=bool)
        row = self.first_bad(~np.isfinite(values) & ~empty)
        if row is not None:
            raise self.error(f"expected a number, got {raw.iloc[row]!r}", row, column)
        return values

    def as_int(self, column: str, *, round_down: bool = False) -> np.ndarray:
        """``column`` as int64; fractional values raise unless ``round_down`` floors them."""
        raw = self.frame[column]
        if pd.api.types.is_integer_dtype(raw):
            return raw.to_numpy(dtype=np.int64)
        values = self.as_float(column)
        if round_down:
            values = np.floor(values)
        row = self.first_bad((values != np.round(values)) | (np.abs(values) >= _INT64_LIMIT))
        if row is not None:
            raise self.error(f"expected an integer, got {raw.iloc[row]!r}", row, column)
        return values.astype(np.int64)


def read_text(path: str | Path, encodings: Sequence[str] = ("utf-8",)) -> str:
    """Read and decode a whole file, trying ``encodings`` in order.

    Raises:
        DataError: The file is missing or unreadable, or no encoding decodes it; the error
            names the line of the first byte the first encoding could not decode.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except IsADirectoryError:
        raise DataError("expected a file, found a directory", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror or exc}", path=path) from None
    first_error: UnicodeDecodeError | None = None
    for encoding in encodings:
        try:
            return data.decode(encoding).removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            first_error = first_error or exc
    assert first_error is not None
    start = first_error.start
    line = data.count(b"\n", 0, start) + 1
    column = start - (data.rfind(b"\n", 0, start) + 1) + 1
    bad = data[start : max(first_error.end, start + 1)]
    raise DataError(
        f"cannot decode byte {bad!r} at character {column} as {first_error.encoding} "
        f"(tried {', '.join(encodings)})",
        path=path,
        line=line,
    ) from None


def read_delimited(
    path: str | Path,
    fields: Sequence[Field],
    *,
    sep: str,
    encodings: Sequence[str] = ("utf-8",),
    skip_lines: int = 0,
) -> ParsedTable:
    """Read a headerless delimited file; see :func:`parse_delimited`."""
    path = Path(path)
    return parse_delimited(read_text(path, encodings), path, fields, sep=sep, skip_lines=skip_lines)


def parse_delimited(
    text: str,
    path: str | Path,
    fields: Sequence[Field],
    *,
    sep: str,
    skip_lines: int = 0,
) -> ParsedTable:
    """Parse decoded text with exactly ``len(fields)`` fields per non-empty line.

    Args:
        text: The whole file, decoded.
        path: The file, named in errors.
        fields: The columns, in file order.
        sep: The field separator (one or more characters, taken literally).
        skip_lines: Lines to skip first (a header already read by the caller).

    Raises:
        DataError: No data lines, a line with the wrong number of fields, or a value that
            does not parse as its field's kind; the error names the first such line.
    """
    path = Path(path)
    body = text
    for _ in range(skip_lines):
        _, _, body = body.partition("\n")
    first_line = skip_lines + 1
    if not body or body.isspace():
        raise DataError("no data lines" if skip_lines else "file is empty", path=path)
    frame = _parse_fast(body, fields, sep)
    if frame is not None:
        line_numbers = None
        if _has_inner_blank_lines(body):
            line_numbers = np.asarray(
                [first_line + i for i, line in enumerate(_lines(body)) if line], dtype=np.int64
            )
        return ParsedTable(frame, path, first_line, line_numbers)
    # Find the first failing stretch with the fast parser, then name its bad line.
    start, stop = _first_failing_stretch(body, fields, sep)
    _check_lines(body[start:stop], path, fields, sep, first_line + body.count("\n", 0, start))
    _check_lines(body, path, fields, sep, first_line)
    # Nothing is wrong: the fast parse was only stricter (e.g. "3.0" as an integer).
    return _parse_slow(body, path, fields, sep, first_line)


def read_csv_table(text: str, path: Path, *, sep: str) -> ParsedTable:
    """Parse a CSV file with a header row and standard quoting; every column stays text.

    Raises:
        DataError: The file is empty, or a record has a different number of fields than the
            header (the error names its first line).
    """
    if not text.strip():
        raise DataError("file is empty", path=path)
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, na_filter=False, engine="c", index_col=False
        )
    except pd.errors.EmptyDataError:
        raise DataError("file is empty", path=path) from None
    except pd.errors.ParserError as exc:
        _csv_record_lines(text, sep, path)  # raises at the first bad record
        raise DataError(f"cannot parse as CSV: {_pandas_message(exc)}", path=path) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    dup = pd.Index(frame.columns).duplicated()
    if dup.any():
        name = frame.columns[int(np.flatnonzero(dup)[0])]
        raise DataError(f"duplicate column {name!r} in the header", path=path, line=1, column=name)
    n_cols = frame.shape[1]
    simple = '"' not in text and not _has_inner_blank_lines(text)
    # Without quotes, one separator count over the text proves every line has n_cols fields
    # (pandas raises on longer lines and pads shorter ones).
    if simple and text.count(sep) == (len(frame) + 1) * (n_cols - 1):
        return ParsedTable(frame, path, first_line=2)
    starts = _csv_record_lines(text, sep, path, n_cols)
    return ParsedTable(frame, path, first_line=2, line_numbers=starts[1 : len(frame) + 1])


def _parse_fast(body: str, fields: Sequence[Field], sep: str) -> pd.DataFrame | None:
    """The parsed frame, or ``None`` if any line fails (or the input is unusual)."""
    data = body.encode("utf-8")
    frame = None
    if len(sep) > 1 and len(set(sep)) == 1 and sep.isascii():
        frame = _read_repeated_separator(data, fields, sep)
    if frame is None:
        if len(sep.encode("utf-8")) > 1:
            if _UNIT_SEPARATOR.encode() in data:
                return None
            data = data.replace(sep.encode("utf-8"), _UNIT_SEPARATOR.encode())
            sep = _UNIT_SEPARATOR
        table = _read_arrow(data, [(f.name, _ARROW_TYPES[f.kind]) for f in fields], sep)
        if table is None:
            return None
        frame = table.to_pandas()
    for f in fields:
        if f.kind == "float" and not np.isfinite(frame[f.name].to_numpy()).all():
            return None
    return frame


def _first_failing_stretch(
    body: str, fields: Sequence[Field], sep: str, small: int = 1 << 20
) -> tuple[int, int]:
    """Character range of whole lines holding the first line the fast parse rejects.

    Bisects on line boundaries while the range is larger than ``small`` characters, so a bad
    line near the end of a huge file is found in a few fast passes instead of a slow scan.
    """
    start, stop = 0, len(body)
    while stop - start > small:
        middle = body.find("\n", (start + stop) // 2, stop) + 1
        if middle <= start or middle >= stop:
            break
        if _parse_fast(body[start:middle], fields, sep) is None:
            stop = middle
        else:
            start = middle
    return start, stop


def _read_repeated_separator(data: bytes, fields: Sequence[Field], sep: str) -> pd.DataFrame | None:
    """Split ``"::"``-style separators on their single character, saving a copy of the text.

    Between two fields there are then ``len(sep) - 1`` empty gap columns; a value holding the
    character (a title with a colon) shows up as a non-empty gap or a wrong column count, and
    the caller falls back to substituting the separator.
    """
    columns: list[tuple[str, pa.DataType]] = []
    gaps: list[str] = []
    for i, f in enumerate(fields):
        columns.append((f.name, _ARROW_TYPES[f.kind]))
        if i < len(fields) - 1:
            for j in range(len(sep) - 1):
                gaps.append(f"\x00gap{i}.{j}")
                columns.append((gaps[-1], pa.string()))
    table = _read_arrow(data, columns, sep[0])
    if table is None:
        return None
    for gap in gaps:
        longest = pa_compute.max(pa_compute.utf8_length(table.column(gap))).as_py()
        if longest:
            return None
    return table.drop_columns(gaps).to_pandas()


def _read_arrow(data: bytes, columns: list[tuple[str, pa.DataType]], sep: str) -> pa.Table | None:
    try:
        return pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(column_names=[name for name, _ in columns]),
            parse_options=pa_csv.ParseOptions(
                delimiter=sep,
                quote_char=False,
                escape_char=False,
                newlines_in_values=False,
                ignore_empty_lines=True,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict(columns), strings_can_be_null=False, null_values=[]
            ),
        )
    except (pa.ArrowException, ValueError):  # a bad line: the slow parse will name it
        return None


def _check_lines(body: str, path: Path, fields: Sequence[Field], sep: str, first_line: int) -> None:
    """Raise at the first line with the wrong number of fields or a value of the wrong kind."""
    typed = [(i, f) for i, f in enumerate(fields) if f.kind != "str"]
    for offset, line in enumerate(_lines(body)):
        if not line:
            continue
        parts = line.split(sep)
        if len(parts) != len(fields):
            raise DataError(
                f"expected {len(fields)} fields separated by {sep!r}, found {len(parts)}: "
                f"{_clip(line)!r}",
                path=path,
                line=first_line + offset,
            )
        for i, f in typed:
            _convert(parts[i], f, path, first_line + offset)


def _parse_slow(
    body: str, path: Path, fields: Sequence[Field], sep: str, first_line: int
) -> ParsedTable:
    """Parse lines already checked by :func:`_check_lines`."""
    columns: list[list[object]] = [[] for _ in fields]
    line_numbers: list[int] = []
    for offset, line in enumerate(_lines(body)):
        if line:
            for f, column, value in zip(fields, columns, line.split(sep), strict=True):
                column.append(_convert(value, f, path, first_line + offset))
            line_numbers.append(first_line + offset)
    frame = pd.DataFrame(
        {
            f.name: pd.Series(column, dtype=_PANDAS_DTYPES[f.kind])
            for f, column in zip(fields, columns, strict=True)
        }
    )
    return ParsedTable(frame, path, first_line, np.asarray(line_numbers, dtype=np.int64))


def _convert(value: str, field: Field, path: Path, line: int) -> object:
    if field.kind == "str":
        return value
    if field.kind == "int":
        integer: int | None
        try:
            integer = int(value)
        except ValueError:
            # The fast parse may reject integral decimals such as "3.0"; accept them here.
            number = _to_float(value)
            integer = int(number) if math.isfinite(number) and number.is_integer() else None
        if integer is not None and -_INT64_LIMIT <= integer < _INT64_LIMIT:
            return integer
        raise DataError(
            f"expected an integer, got {value!r}", path=path, line=line, column=field.name
        )
    number = _to_float(value)
    if not math.isfinite(number):
        raise DataError(
            f"expected a number, got {value!r}", path=path, line=line, column=field.name
        )
    return number


def _to_float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.nan


def _lines(body: str) -> Iterable[str]:
    # StringIO with the default newline splits on "\n" only, like the line numbers we report.
    for line in io.StringIO(body):
        yield line.rstrip("\n").removesuffix("\r")


def _has_inner_blank_lines(body: str) -> bool:
    # Trailing blank lines do not shift row numbers; find() with bounds avoids copying a
    # text of hundreds of megabytes.
    end = len(body)
    while end and body[end - 1] in "\r\n":
        end -= 1
    crlf = body.find("\r\n", 0, 4096) != -1  # only then can "\n\r\n" occur in practice
    return (
        body.startswith(("\n", "\r\n"))
        or body.find("\n\n", 0, end) != -1
        or (crlf and body.find("\n\r\n", 0, end) != -1)
    )


def _csv_record_lines(text: str, sep: str, path: Path, n_fields: int | None = None) -> np.ndarray:
    """1-based start line of every non-empty CSV record (the header included).

    Every record must have ``n_fields`` fields (by default, as many as the header).
    """
    starts: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    previous_end = 0
    try:
        for record in reader:
            if record:
                if n_fields is None:
                    n_fields = len(record)
                elif len(record) != n_fields:
                    raise DataError(
                        f"expected {n_fields} fields separated by {sep!r} as in the header, "
                        f"found {len(record)}: {_clip(sep.join(record))!r}",
                        path=path,
                        line=previous_end + 1,
                    )
                starts.append(previous_end + 1)
            previous_end = reader.line_num
    except csv.Error as exc:
        raise DataError(f"cannot parse as CSV: {exc}", path=path, line=reader.line_num) from None
    return np.asarray(starts, dtype=np.int64)


def _pandas_message(exc: Exception) -> str:
    return str(exc).replace("Error tokenizing data. C error: ", "").strip()


def _clip(line: str, limit: int = 120) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."
