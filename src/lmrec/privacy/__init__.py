"""Privacy at the data boundary: keyed pseudonyms of user ids and PII scrubbing of free text.

- :class:`Pseudonymizer` turns raw user ids into HMAC-SHA256 pseudonyms under a secret key
  file (``lmrec privacy keygen PATH``); :meth:`Pseudonymizer.pseudonym` recomputes one, e.g.
  to delete a user known by their raw id.
- :func:`scrub_text` / :class:`Scrubber` replace e-mail addresses, phone numbers, card
  numbers, IPs, URLs with query strings and custom patterns by ``[EMAIL]``, ``[PHONE]``, ...
- :func:`apply_privacy` does both to a loaded dataset as an experiment's ``[privacy]`` table
  (:class:`PrivacyConfig`) asks.
"""

from __future__ import annotations

from lmrec.privacy.boundary import (
    apply_privacy,
    pseudonymize_dataset,
    pseudonymizer_for_run,
    scrub_dataset,
    scrub_new_item,
)
from lmrec.privacy.config import PII_TYPES, PIIType, PrivacyConfig, ScrubConfig
from lmrec.privacy.pseudonyms import (
    KEY_FILE_ENV,
    PSEUDONYM_HEX_CHARS,
    Pseudonymizer,
    read_key_file,
    write_key_file,
)
from lmrec.privacy.scrub import PLACEHOLDERS, PIIMatch, Scrubber, luhn_ok, scrub_text, scrubber_for

__all__ = [
    "KEY_FILE_ENV",
    "PII_TYPES",
    "PLACEHOLDERS",
    "PSEUDONYM_HEX_CHARS",
    "PIIMatch",
    "PIIType",
    "PrivacyConfig",
    "Pseudonymizer",
    "ScrubConfig",
    "Scrubber",
    "apply_privacy",
    "luhn_ok",
    "pseudonymize_dataset",
    "pseudonymizer_for_run",
    "read_key_file",
    "scrub_dataset",
    "scrub_new_item",
    "scrub_text",
    "scrubber_for",
    "write_key_file",
]
