"""Typed settings of the privacy layer: the ``[privacy]`` table of an experiment file.

::

    [privacy]
    pseudonymize = true
    key_file = "secrets/pseudonym.key"   # or the LMREC_PSEUDONYM_KEY_FILE environment variable
    scrub = true
    custom_patterns = { ORDER = 'ORD-\\d{8}' }

Every value is validated when the file is read; a bad one raises a ``ValueError`` that
names the field (turned into :class:`lmrec.errors.ConfigError` by :mod:`lmrec.config`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PIIType = Literal["email", "phone", "card", "ip", "url"]
"""The built-in kinds of personal data the scrubber knows."""

PII_TYPES: tuple[PIIType, ...] = ("email", "phone", "card", "ip", "url")

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")


class ScrubConfig(BaseModel):
    """What :class:`lmrec.privacy.Scrubber` replaces."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    types: tuple[PIIType, ...] = PII_TYPES
    """Built-in kinds to replace, any of ``email``, ``phone``, ``card``, ``ip``, ``url``."""
    custom_patterns: dict[str, str] = Field(default_factory=dict)
    """Extra kinds, name -> Python regular expression; a match becomes ``[NAME]`` (upper
    case). Custom patterns win over the built-in kinds where they overlap."""

    @field_validator("custom_patterns")
    @classmethod
    def _check_patterns(cls, value: dict[str, str]) -> dict[str, str]:
        return check_custom_patterns(value)


def check_custom_patterns(patterns: dict[str, str]) -> dict[str, str]:
    """Validate custom pattern names and regexes; raise ``ValueError`` naming the bad one."""
    builtin = {t.upper() for t in PII_TYPES}
    seen: set[str] = set()
    for name, pattern in patterns.items():
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"custom pattern name {name!r} must be a letter followed by up to 39 letters, "
                "digits or underscores"
            )
        if name.upper() in builtin:
            raise ValueError(f"custom pattern name {name!r} is a built-in kind; pick another")
        if name.upper() in seen:
            raise ValueError(f"custom pattern name {name!r} is given twice (names ignore case)")
        seen.add(name.upper())
        try:
            compiled = re.compile(pattern)
        except re.error as e:
            raise ValueError(f"custom pattern {name!r} is not a valid regex: {e}") from None
        if compiled.fullmatch("") is not None:
            raise ValueError(f"custom pattern {name!r} matches the empty string")
    return patterns


class PrivacyConfig(BaseModel):
    """The ``[privacy]`` table: pseudonymous user ids and PII scrubbing at the data boundary.

    Both apply right after a dataset is loaded, before it is split, so that nothing an
    experiment writes (model, logs, run record) holds a raw user id or unscrubbed text.
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    pseudonymize: bool = False
    """Replace user ids by keyed HMAC-SHA256 pseudonyms (:class:`lmrec.privacy.Pseudonymizer`)."""
    key_file: Path | None = None
    """The secret key file; unset reads the path from ``LMREC_PSEUDONYM_KEY_FILE``. Create
    one with ``lmrec privacy keygen PATH``."""
    create_key: bool = False
    """Create the key file (owner-only permissions) when it does not exist. Off by default:
    a mistyped path would otherwise silently start a new key and new pseudonyms."""
    scrub: bool = False
    """Replace e-mail addresses, phone numbers, card numbers, IPs and URLs with query strings
    in item texts and user attributes by typed placeholders (``[EMAIL]``, ...)."""
    scrub_types: tuple[PIIType, ...] = PII_TYPES
    """The built-in kinds scrubbed."""
    custom_patterns: dict[str, str] = Field(default_factory=dict)
    """Extra kinds to scrub, name -> regex; a match becomes ``[NAME]``."""

    @field_validator("custom_patterns")
    @classmethod
    def _check_patterns(cls, value: dict[str, str]) -> dict[str, str]:
        return check_custom_patterns(value)

    def scrub_config(self) -> ScrubConfig:
        """The scrubber settings of this table."""
        return ScrubConfig(types=self.scrub_types, custom_patterns=dict(self.custom_patterns))
