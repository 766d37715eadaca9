"""Token ids of ``profile [SEP] item`` pairs, built from the tokenizer's own pair layout.

The layout (``[CLS] a [SEP] b [SEP]`` for BERT) is read once from the tokenizer by encoding
a probe pair, so every Hugging Face tokenizer works without knowing its special tokens; a
tokenizer that puts nothing between the two texts (GPT-2) gets its separator or
end-of-text token there. Item texts are tokenized once per catalog; profiles per call. The
profile side is truncated first, but the item text always keeps at least half the room.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_PROBE = ("profile", "item")


def _find(haystack: list[int], needle: list[int], start: int = 0) -> int:
    for i in range(start, len(haystack) - len(needle) + 1):
        if haystack[i : i + len(needle)] == needle:
            return i
    return -1


def pair_template(tokenizer: Any) -> tuple[list[int], list[int], list[int]]:
    """The special tokens before, between and after the two texts of a pair.

    Args:
        tokenizer: A Hugging Face tokenizer.

    Returns:
        ``(prefix, middle, suffix)`` token ids; ``middle`` is never empty.
    """
    first = list(tokenizer(_PROBE[0], add_special_tokens=False)["input_ids"])
    second = list(tokenizer(_PROBE[1], add_special_tokens=False)["input_ids"])
    both = list(tokenizer(*_PROBE)["input_ids"])
    i = _find(both, first)
    j = _find(both, second, i + len(first)) if i >= 0 else -1
    if i < 0 or j < 0:  # an unusual template: plain concatenation around a separator
        prefix, middle, suffix = [], [], []
    else:
        prefix, middle, suffix = both[:i], both[i + len(first) : j], both[j + len(second) :]
    if not middle:
        sep = next(
            (t for t in (tokenizer.sep_token_id, tokenizer.eos_token_id) if t is not None), None
        )
        middle = (
            [int(sep)]
            if sep is not None
            else list(tokenizer(" [SEP] ", add_special_tokens=False)["input_ids"])
        )
    return prefix, middle, suffix


class PairEncoder:
    """Builds the token ids of (profile text, item) pairs.

    Args:
        tokenizer: The language model's tokenizer.
        item_texts: Every item's text, row ``i`` = item index ``i``.
        max_length: Tokens per pair, special tokens included.

    Raises:
        ValueError: ``max_length`` leaves no room for text next to the special tokens.
    """

    def __init__(self, tokenizer: Any, item_texts: Sequence[str], max_length: int) -> None:
        self.tokenizer = tokenizer
        self.prefix, self.middle, self.suffix = pair_template(tokenizer)
        self.max_length = max_length
        self.room = max_length - len(self.prefix) - len(self.middle) - len(self.suffix)
        if self.room < 2:
            raise ValueError(f"max_length {max_length} leaves no room for the pair's texts")
        self.item_ids = self.tokenize(item_texts, limit=self.room)

    def tokenize(self, texts: Sequence[str], limit: int | None = None) -> list[list[int]]:
        """Token ids of ``texts`` without special tokens, each cut to ``limit`` tokens."""
        if not texts:
            return []
        encoded = self.tokenizer(
            list(texts),
            add_special_tokens=False,
            truncation=limit is not None,
            max_length=limit,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        return [list(ids) for ids in encoded]

    def pair(self, profile_ids: Sequence[int], item: int) -> list[int]:
        """One pair's ids: the profile is cut first; the item keeps at least half the room."""
        item_ids = self.item_ids[item]
        keep_item = min(len(item_ids), max(self.room - len(profile_ids), self.room // 2))
        keep_profile = min(len(profile_ids), self.room - keep_item)
        return [
            *self.prefix,
            *profile_ids[:keep_profile],
            *self.middle,
            *item_ids[:keep_item],
            *self.suffix,
        ]

    def pairs(self, profiles: Sequence[str], items: np.ndarray) -> list[list[int]]:
        """The ids of every ``(profiles[j], items[j])`` pair; each distinct profile is
        tokenized once."""
        if len(profiles) != len(items):
            raise ValueError(f"{len(profiles)} profiles but {len(items)} items")
        position: dict[str, int] = {}
        for text in profiles:
            position.setdefault(text, len(position))
        tokens = self.tokenize(list(position), limit=self.room)
        return [
            self.pair(tokens[position[text]], int(item))
            for text, item in zip(profiles, items, strict=True)
        ]
