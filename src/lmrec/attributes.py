"""What an item is about, in words a person reads: a short title, categories and keywords.

Explanations (:mod:`lmrec.explain`) and user profiles (:mod:`lmrec.profile`) both describe
items by these attributes. Categories come from the catalog (MovieLens genres, Amazon
categories); keywords are the distinctive words of an item's title or description: the
tokens left after removing English stopwords, numbers and words that occur in more than a
share ``max_df`` of the catalog (on Amazon Scientific every text contains "Industrial &
Scientific"; such words say nothing about one item).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lmrec.errors import ConfigError

_TOKEN = re.compile(r"[a-z][a-z0-9'\-]*[a-z0-9]|[0-9]+[a-z][a-z0-9\-]*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")

_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just let me more most my myself no nor not now of off on once only
    or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves les la le el de des du und der die das il ii iii iv vs via per x
    new one two pack set pcs pc piece pieces inch inches mm cm ft lb lbs oz kg g ml"""

#: Function words and a few catalogue fillers, never keywords.
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def keyword_tokens(text: str) -> list[str]:
    """The lower-case word tokens of ``text`` that may be keywords, in order, without repeats.

    Plurals become singular; stopwords, tokens with digits and tokens shorter than three
    characters are left out.
    """
    seen: dict[str, None] = {}
    for token in _TOKEN.findall(text.lower()):
        token = _singular(token.strip("'-"))
        # Tokens with digits are model numbers and sizes ("m3-0", "1kg"), not topics.
        if len(token) >= 3 and token not in STOPWORDS and not any(c.isdigit() for c in token):
            seen.setdefault(token, None)
    return list(seen)


def _singular(token: str) -> str:
    """A plain English plural in its singular ("screws" → "screw"), so both forms match."""
    if len(token) > 4 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-3] + "y" if token.endswith("ies") else token[:-1]
    return token


def display_title(text: str, max_chars: int = 60) -> str:
    """The first sentence of ``text``, cut at a word boundary to ``max_chars`` (with "…")."""
    text = " ".join(str(text).split())
    text = _SENTENCE_END.split(text, maxsplit=1)[0].rstrip(".")
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return (cut or text[: max_chars - 1]) + "…"


@dataclass
class ItemAttributes:
    """Per item index: a display title, the categories and the keywords (with their IDF).

    Build it with :meth:`from_catalog`.

    Args:
        item_ids: External item ids, by item index.
        titles: Display titles (:func:`display_title`), by item index.
        categories: Catalog categories, by item index (empty when unknown).
        keywords: Distinctive keywords, by item index, most distinctive first.
        idf: ``log(n_items / document frequency)`` of every kept keyword.
    """

    item_ids: list[str]
    titles: list[str]
    categories: list[list[str]]
    keywords: list[list[str]]
    idf: dict[str, float]

    @classmethod
    def from_catalog(
        cls,
        item_ids: Sequence[str],
        catalog: Mapping[str, Mapping[str, Any]],
        *,
        max_df: float = 0.05,
        title_chars: int = 60,
    ) -> ItemAttributes:
        """Attributes of ``item_ids`` from a run's catalog (``{"title", "categories"}``).

        Args:
            item_ids: External ids, by item index; an id missing from the catalog gets its
                id as title and no attributes.
            catalog: Item id → ``{"title": str, "categories": [str], "text": str}``; the
                keywords read ``title`` and, when present, ``text``.
            max_df: Words in more than this share of the items are not keywords.
            title_chars: Longest display title.

        Raises:
            ConfigError: ``max_df`` is not in ``(0, 1]``.
        """
        if not 0.0 < max_df <= 1.0:
            raise ConfigError(f"max_df must be in (0, 1], got {max_df}")
        titles, categories, tokens = [], [], []
        for item in item_ids:
            info = catalog.get(item, {})
            raw = str(info.get("title", "") or item)
            titles.append(display_title(raw, title_chars))
            categories.append([str(c) for c in info.get("categories", []) or []])
            tokens.append(keyword_tokens(f"{raw} {info.get('text', '') or ''}"))
        n = max(len(item_ids), 1)
        df = Counter(t for row in tokens for t in row)
        # A keyword must be shared by two items at least, or it can never link two items.
        limit = max(2.0, max_df * n)
        idf = {t: math.log(n / c) for t, c in df.items() if 2 <= c <= limit}
        keywords = [sorted((t for t in row if t in idf), key=lambda t: -idf[t]) for row in tokens]
        return cls(list(item_ids), titles, categories, keywords, idf)

    def __len__(self) -> int:
        return len(self.item_ids)
