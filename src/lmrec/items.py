"""New catalog items: validated records, read from JSONL or CSV, turned into model text.

A trained text model places an item it has never seen by its text alone
(:meth:`lmrec.pipeline.Pipeline.add_items`). This module checks the records people give
(``id``, ``title``, optional ``text``/``description`` and ``categories``) and writes each
one's text in the form the catalog's texts already have, so that a new movie reads
``"title: Dune: Part Two (2024); genres: Action, Sci-Fi"`` next to MovieLens titles and a
new product ``"text: eSUN PLA filament 1.75mm. Spool of 1 kg"`` next to Amazon ones::

    items = read_items_file("new.jsonl")
    layout = text_layout(model.item_texts)          # ("title", "genres")
    texts = {i.item_id: item_text(i, layout) for i in items}
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmrec.errors import DataError

FIELDS = ("id", "title", "text", "description", "categories")
"""The fields of an item record; ``item_id`` is accepted for ``id``, ``description`` is
another name for ``text``."""

TITLE_LABELS = frozenset({"title", "name"})
CATEGORY_LABELS = frozenset({"genres", "genre", "categories", "category", "tags"})
CSV_CATEGORY_SEPARATOR = "|"
TITLE_CHARS = 200
"""Catalog titles are cut to this many characters (as ``lmrec train`` writes them)."""

_LABEL = re.compile(r"(?:^|; )([A-Za-z_][A-Za-z0-9_ ]{0,30}): ")
_LAYOUT_SAMPLE = 500


@dataclass(frozen=True)
class NewItem:
    """One item to add to a trained catalog.

    Args:
        item_id: The item's id; an id the catalog has already gets its text replaced.
        title: What people see; may be empty when ``text`` is not.
        text: A description, shown to the model after the title.
        categories: Genres or categories.
    """

    item_id: str
    title: str = ""
    text: str = ""
    categories: tuple[str, ...] = ()

    @property
    def display_title(self) -> str:
        """The title, or the start of the text when there is no title."""
        return (self.title or self.text)[:TITLE_CHARS]


def parse_item(
    record: NewItem | Mapping[str, Any],
    where: str = "item",
    *,
    path: str | Path | None = None,
    line: int | None = None,
) -> NewItem:
    """Check one record and return it as a :class:`NewItem`.

    Args:
        record: A :class:`NewItem` or a mapping with the :data:`FIELDS`. The id may be a
            string or an integer; ``categories`` a list of strings.
        where: Where the record is, for messages (``"item 3"``); unused with ``line``.
        path: The file the record is from, for messages.
        line: Its line in that file.

    Raises:
        DataError: A field is unknown, missing or of the wrong type, or the item has no
            text at all; the message names the field and the value.
    """

    def error(message: str, column: str | None = None) -> DataError:
        shown = message if line is not None else f"{where}: {message}"
        return DataError(shown, path=path, line=line, column=column)

    if isinstance(record, NewItem):
        record = {
            "id": record.item_id,
            "title": record.title,
            "text": record.text,
            "categories": list(record.categories),
        }
    if not isinstance(record, Mapping):
        raise error(f"expected an object with fields {', '.join(FIELDS)}, got {record!r}")
    fields = dict(record)
    if "item_id" in fields:
        if "id" in fields:
            raise error("give 'id' or 'item_id', not both", "id")
        fields["id"] = fields.pop("item_id")
    unknown = sorted(str(f) for f in set(fields) - set(FIELDS))
    if unknown:
        raise error(f"unknown field {unknown[0]!r} (expected {', '.join(FIELDS)})", unknown[0])
    item_id = fields.get("id")
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        item_id = str(item_id)
    if not isinstance(item_id, str) or not item_id.strip():
        raise error(f"id must be a non-empty string, got {item_id!r}", "id")
    item_id = item_id.strip()
    if "text" in fields and "description" in fields:
        raise error(f"item {item_id!r} has both 'text' and 'description'; give one", "text")
    texts = {"title": fields.get("title"), "text": fields.get("text", fields.get("description"))}
    for name, value in texts.items():
        if value is not None and not isinstance(value, str):
            raise error(
                f"item {item_id!r}: {name} must be a string, got {type(value).__name__} {value!r}",
                name,
            )
    title, text = (" ".join((v or "").split()) for v in texts.values())
    if not title and not text:
        raise error(f"item {item_id!r} needs a non-empty title or text", "title")
    categories = fields.get("categories")
    if categories is None:
        categories = []
    if not isinstance(categories, list | tuple) or not all(isinstance(c, str) for c in categories):
        raise error(
            f"item {item_id!r}: categories must be a list of strings, got {categories!r}",
            "categories",
        )
    cats = tuple(c.strip() for c in categories if c.strip())
    return NewItem(item_id=item_id, title=title, text=text, categories=cats)


def parse_items(
    records: Iterable[NewItem | Mapping[str, Any]],
    *,
    path: str | Path | None = None,
    lines: Sequence[int] | None = None,
) -> list[NewItem]:
    """Check every record (see :func:`parse_item`) and that no id appears twice.

    Args:
        records: The records.
        path: The file they are from, for messages.
        lines: Per record, its line in that file; default: messages say ``item 1``, …

    Raises:
        DataError: A record is invalid, or an id is given twice.
    """
    items: list[NewItem] = []
    seen: dict[str, str] = {}
    for n, record in enumerate(records):
        line = lines[n] if lines is not None else None
        where = f"item {n + 1}"
        item = parse_item(record, where, path=path, line=line)
        if item.item_id in seen:
            message = f"duplicate item id {item.item_id!r} (first at {seen[item.item_id]})"
            shown = message if line is not None else f"{where}: {message}"
            raise DataError(shown, path=path, line=line, column="id")
        seen[item.item_id] = f"line {line}" if line is not None else where
        items.append(item)
    return items


def read_items_file(path: str | Path) -> list[NewItem]:
    """Read item records from a ``.jsonl`` file (one JSON object a line) or a ``.csv`` file
    with a header (``id,title,text,categories``; categories separated by ``|``).

    Raises:
        DataError: The file is missing, of another kind, not parseable, or a record is
            invalid; the message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path=path)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise DataError(f"expected a .jsonl or .csv file, got {suffix or 'no suffix'!r}", path=path)
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text: {exc}", path=path) from None
    records, lines = _read_jsonl(content, path) if suffix == ".jsonl" else _read_csv(content, path)
    items = parse_items(records, path=path, lines=lines)
    if not items:
        raise DataError("holds no items", path=path)
    return items


def _read_jsonl(content: str, path: Path) -> tuple[list[Any], list[int]]:
    records, lines = [], []
    for n, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON: {exc.msg}", path=path, line=n) from None
        lines.append(n)
    return records, lines


def _read_csv(content: str, path: Path) -> tuple[list[Any], list[int]]:
    reader = csv.DictReader(io.StringIO(content, newline=""))
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in (*FIELDS, "item_id")]
    if unknown:
        raise DataError(
            f"unknown column {unknown[0]!r} (expected {', '.join(FIELDS)})",
            path=path,
            line=1,
            column=unknown[0],
        )
    records, lines = [], []
    for row in reader:
        if None in row:
            raise DataError("more values than header columns", path=path, line=reader.line_num)
        record: dict[str, Any] = {k: v for k, v in row.items() if v is not None and v != ""}
        if "categories" in record:
            record["categories"] = record["categories"].split(CSV_CATEGORY_SEPARATOR)
        records.append(record)
        lines.append(reader.line_num)
    return records, lines


def text_layout(texts: Sequence[str]) -> tuple[str, ...]:
    """The field labels the catalog's texts are written with, in their order.

    Texts made by :func:`lmrec.data.schema.format_item_text` read ``"title: …; genres: …"``;
    the labels found at the start of at least half of them are the layout (MovieLens:
    ``("title", "genres")``, Amazon: ``("text",)``). Without such texts: ``("title",)``.
    """
    sample = list(texts[:_LAYOUT_SAMPLE])
    found: Counter[str] = Counter()
    position: dict[str, list[int]] = {}
    for text in sample:
        labels = list(dict.fromkeys(m.group(1) for m in _LABEL.finditer(text)))
        found.update(labels)
        for j, label in enumerate(labels):
            position.setdefault(label, []).append(j)
    common = [label for label, n in found.items() if 2 * n >= len(sample)]
    if not common:
        return ("title",)
    return tuple(sorted(common, key=lambda label: sum(position[label]) / len(position[label])))


def item_text(item: NewItem, layout: Sequence[str]) -> str:
    """The item's text in the catalog's layout (see :func:`text_layout`).

    Title labels (``title``, ``name``) get the title, category labels (``genres``,
    ``categories``, …) the categories, the first other label (``text``) the text, led by
    the title when the layout has no title label. What the layout has no place for follows
    as ``description: …`` and ``categories: …``, as :func:`lmrec.data.schema.format_item_text`
    adds categories.
    """
    has_title = any(label in TITLE_LABELS for label in layout)
    has_categories = any(label in CATEGORY_LABELS for label in layout)
    categories = ", ".join(item.categories)
    free_used = False
    parts = []
    for label in layout:
        if label in TITLE_LABELS:
            value = item.title
        elif label in CATEGORY_LABELS:
            value = categories
        elif not free_used:
            free_used = True
            value = item.text if has_title else _sentences(item.title, item.text)
        else:
            value = ""
        if value:
            parts.append(f"{label}: {value}")
    if not has_title and not free_used and item.title:
        parts.insert(0, f"title: {item.title}")
    if not free_used and item.text:
        parts.append(f"description: {item.text}")
    if categories and not has_categories:
        parts.append(f"categories: {categories}")
    return "; ".join(parts)


def _sentences(*parts: str) -> str:
    kept = [p for p in parts if p]
    return " ".join(
        p if j == len(kept) - 1 or p.endswith((".", "!", "?")) else p + "."
        for j, p in enumerate(kept)
    )
