"""The user side of a CTR pair: a short text profile from recent titles and attributes.

Kept on its own because richer profiles (stated preferences, summaries of long histories)
will replace :func:`profile_text` without touching the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lmrec.data.schema import USER, Dataset, IdMap
from lmrec.errors import ConfigError

#: User columns never shown unless asked for by name: quasi-identifiers, not tastes.
HIDDEN_USER_FIELDS = frozenset({"zip_code", "zip", "zipcode", "postcode", "postal_code"})

_TITLE_CHARS = 80
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def profile_text(
    history_titles: Sequence[str],
    attributes: Mapping[str, str] | None = None,
    categories: Sequence[str] | None = None,
) -> str:
    """The text that describes a user to the CTR model.

    Example: ``"age: 24; gender: M; occupation: technician; likes: Drama, Sci-Fi; recent:
    Heat (1995); Alien (1979)"``.

    Args:
        history_titles: Titles of the user's most recent items, newest first (the caller
            picks how many, and only items from before the predicted interaction).
        attributes: User attributes by name, shown in the given order; ``None`` or empty
            for none.
        categories: The user's top categories (:func:`lmrec.profile.top_categories`),
            shown before the titles so that truncation keeps them; ``None`` or empty for
            none (the text is then the same as without the argument).

    Returns:
        The profile; ``"no history"`` when there is nothing to show, so the model always
        reads something.
    """
    parts = [f"{name}: {value}" for name, value in (attributes or {}).items() if value != ""]
    if categories:
        parts.append("likes: " + ", ".join(categories))
    titles = [t for t in history_titles if t]
    if titles:
        parts.append("recent: " + "; ".join(titles))
    return "; ".join(parts) if parts else "no history"


def short_title(text: str, max_chars: int = _TITLE_CHARS) -> str:
    """The first sentence of ``text``, cut at a word boundary to at most ``max_chars``.

    Long product descriptions (Amazon) shrink to their title; short titles stay as they are.
    """
    text = " ".join(str(text).split())
    text = _SENTENCE_END.split(text, maxsplit=1)[0]
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0]
    return cut or text[:max_chars]


def item_titles(dataset: Dataset) -> list[str]:
    """Each item's short title in item-map order: the ``title`` column when there is one,
    else the first text field, shortened by :func:`short_title`."""
    items = dataset.items
    column = "title" if "title" in items.columns else dataset.text_fields[0]
    values = items[column].tolist()
    return ["" if _missing(v) else short_title(str(v)) for v in values]


def user_attributes(
    dataset: Dataset, user_map: IdMap, fields: Sequence[str] | None = None
) -> list[dict[str, str]]:
    """Per user index of ``user_map``, the attributes shown in the profile.

    Args:
        dataset: The dataset; without a users table every user gets ``{}``.
        user_map: The user indices to fill.
        fields: Columns to show, in order; ``None`` shows every column except the user id
            and :data:`HIDDEN_USER_FIELDS`.

    Raises:
        ConfigError: A requested field is not a column of the users table.
    """
    out: list[dict[str, str]] = [{} for _ in range(len(user_map))]
    users = dataset.users
    if users is None:
        if fields:
            raise ConfigError(f"user_fields: {dataset.name!r} has no users table")
        return out
    columns = [c for c in users.columns if c != USER]
    if fields is None:
        shown = [c for c in columns if c.lower() not in HIDDEN_USER_FIELDS]
    else:
        missing = [f for f in fields if f not in columns]
        if missing:
            raise ConfigError(
                f"user_fields: {missing[0]!r} is not a user column of {dataset.name!r} "
                f"({', '.join(columns)})"
            )
        shown = list(fields)
    for record in users[[USER, *shown]].to_dict("records"):
        user_id = str(record[USER])
        if user_id not in user_map:
            continue
        out[user_map.index(user_id)] = {
            f: _format_value(record[f]) for f in shown if not _missing(record[f])
        }
    return out


def _missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return False
    result = pd.isna(value)  # type: ignore[call-overload]
    return isinstance(result, bool | np.bool_) and bool(result)


def _format_value(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
