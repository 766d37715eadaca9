"""PII scrubbing of free text: small, tested rules that replace personal data by typed
placeholders before text is stored or reaches a model.

====================  ==========  ===============================================================
kind                  placeholder what is replaced
====================  ==========  ===============================================================
e-mail address        ``[EMAIL]`` ``local@domain.tld`` (ASCII; the domain needs a dot and a TLD
                                  of letters)
phone number          ``[PHONE]`` international numbers with ``+`` or ``00`` (8-15 digits,
                                  separators `` .-``, ``(0)`` and brackets allowed); North
                                  American ``(415) 555-2671``, ``415-555-2671``,
                                  ``1-800-555-0199``; national numbers with a trunk ``0`` and
                                  separators (``020 7946 0958``, ``01 23 45 67 89``, 9-12 digits)
payment card number   ``[CARD]``  13-19 digits starting with 2-6 (the major networks), alone or
                                  grouped by spaces or dashes (``4-4-4-4``, ``4-6-5``, ...),
                                  that pass the Luhn check; other digit runs are kept
IP address            ``[IP]``    dotted-quad IPv4 (each part 0-255); IPv6 as Python's
                                  ``ipaddress`` accepts it, with at least one digit
URL with a query      ``[URL]``   ``http(s)://``, ``ftp://``, ``ws(s)://`` or ``www.`` links that
                                  carry a query string, a ``key=value`` fragment or credentials
                                  (``user:pass@``)
custom                ``[NAME]``  whatever ``custom_patterns`` names
====================  ==========  ===============================================================

URLs without a query string are kept: a product or page address is item content, while query
strings are where session ids, tokens, e-mail addresses and tracking ids travel. An e-mail
address or an IP inside a kept URL is still replaced (``http://[IP]/admin``).

What is *not* detected: names, postal addresses, dates of birth, national id numbers
(SSNs, ...), IBANs, obfuscated forms (``alice at example dot com``), phone numbers written
as bare digit runs without ``+`` (``4155552671``) or as 7-digit local numbers
(``555-2671``), and bare domains with a query (``example.com/?q=x``). Known false positives:
four-part version numbers that are valid IPv4 addresses (``2.14.1.0``) unless preceded by a
word such as "version" (a dotted quad of four single digits, ``1.2.3.4``, is always taken
for a version: hardly anyone's address looks like that), and 13-19 digit codes that happen
to pass the Luhn check (one in ten random ones; EAN-13 barcodes use another checksum) unless
a word such as "EAN", "ISBN", "SKU" or "serial" comes right before them.

When matches overlap the one of the higher-priority kind wins (custom, URL, e-mail, card,
IP, phone), then the longer one. Scrubbing repeats until nothing changes, so it is idempotent.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lmrec.privacy.config import PII_TYPES, ScrubConfig

if TYPE_CHECKING:
    from lmrec.privacy.config import PrivacyConfig

PLACEHOLDERS: dict[str, str] = {t: f"[{t.upper()}]" for t in PII_TYPES}
"""The placeholder of each built-in kind."""

MAX_PASSES = 4
"""Scrubbing repeats until the text stops changing, at most this many times."""

# Lower number wins where matches overlap; custom patterns come first.
_PRIORITY = {"url": 1, "email": 2, "card": 3, "ip": 4, "phone": 5}

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])"
)

_URL = re.compile(r"(?<![\w@.])(?:(?:https?|ftp|wss?)://|www\.)[^\s<>\"'`{}|\\^]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\")]"

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.-]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w-])(?!\.\d)")
_VERSION_WORDS = re.compile(
    r"\b(?:version|ver\.?|v|release|build|firmware|rev\.?|update)\s*$", re.IGNORECASE
)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?"
    r"(?![\w:])(?!\.\d)"
)

# A run of digits joined by single spaces or dashes; card numbers are found inside it.
_DIGIT_RUN = re.compile(r"(?<![\w.,-])\d(?:[ -]?\d)*(?![\w])")
# A digit run right after one of these words is a code, not a card.
_CODE_WORDS = re.compile(
    r"\b(?:ean|gtin|upc|isbn|issn|sku|barcode|serial|s/n|tracking|imei)\b[\s:#.-]*(?:no\.?\s*)?$",
    re.IGNORECASE,
)

# Neither may continue a digit group before it ("4624 0415 6901 8385" is no phone).
_NANP = re.compile(
    r"(?<![\w+.\-])(?<!\d[ .\-/])"
    r"(?:(?:\+|00)?1[ .\-]?)?"
    r"(?:\(\d{3}\)[ .\-]?\d{3}[ .\-]\d{4}|\d{3}(?P<s>[ .\-])\d{3}(?P=s)\d{4})"
    r"(?!\w)(?![.\-]\d)"
)
_INTERNATIONAL = re.compile(
    r"(?<![\w+.\-])(?<!\d[ .\-/])(?:\+|00)[1-9]\d{0,2}"
    r"(?:[ .\-]?\(0\))?"
    r"(?:[ .\-]?\(\d{1,5}\)|[ .\-]?\d{1,5})"
    r"(?:[ .\-]?\d{2,5}){0,5}"
    r"(?!\w)(?![.\-]\d)"
)
_NATIONAL = re.compile(
    r"(?<![\w+.\-/])(?<!\d[ .\-/])"
    r"(?:\(0\d{1,4}\) ?|0\d{1,4}[ .\-/])"
    r"\d{2,8}(?:(?P<s>[ .\-])\d{2,4}(?:(?P=s)\d{2,4}){0,4})?"
    r"(?!\w)(?![.\-/]\d)"
)


@dataclass(frozen=True)
class PIIMatch:
    """One piece of personal data found in a text: ``text[start:end]`` is of ``kind``."""

    start: int
    end: int
    kind: str

    @property
    def placeholder(self) -> str:
        return f"[{self.kind.upper()}]"


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_MAX_CARD_GROUPS = 6


def _card_groups_ok(groups: list[str]) -> bool:
    digits = "".join(groups)
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456":
        return False
    if len(groups) > 1 and not (
        len(groups[0]) == 4
        and all(4 <= len(g) <= 6 for g in groups[1:-1])
        and 2 <= len(groups[-1]) <= 6
    ):
        return False
    return luhn_ok(digits)


def _find_cards(text: str) -> Iterator[PIIMatch]:
    for run in _DIGIT_RUN.finditer(text):
        raw = run.group()
        if sum(c.isdigit() for c in raw) < 13:
            continue
        seps = {c for c in raw if not c.isdigit()}
        if len(seps) > 1:  # mixed separators: not a card as people write them
            continue
        if _CODE_WORDS.search(text, max(0, run.start() - 16), run.start()):
            continue
        parts = re.split(r"[ -]", raw)
        starts, pos = [], run.start()
        for p in parts:
            starts.append(pos)
            pos += len(p) + 1
        i = 0
        while i < len(parts):  # the longest valid card starting at each group, left to right
            # a card has at most 19 digits: 4 + 5 groups of 3 or more, or one group of 19
            for j in range(min(len(parts), i + _MAX_CARD_GROUPS), i, -1):
                if _card_groups_ok(parts[i:j]):
                    yield PIIMatch(starts[i], starts[j - 1] + len(parts[j - 1]), "card")
                    i = j
                    break
            else:
                i += 1


def _find_emails(text: str) -> Iterator[PIIMatch]:
    if "@" in text:
        for m in _EMAIL.finditer(text):
            yield PIIMatch(m.start(), m.end(), "email")


def _trim_url(url: str) -> str:
    while url and url[-1] in _URL_TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def _url_has_private_parts(url: str) -> bool:
    full = url if "://" in url else "http://" + url
    try:
        parts = urlsplit(full)
    except ValueError:  # a bracketed host that is no IPv6 (e.g. already "[IP]")
        return re.search(r"\?.|#.*=|//[^/]*@", url) is not None
    return bool(parts.query) or "=" in parts.fragment or "@" in parts.netloc


def _find_urls(text: str) -> Iterator[PIIMatch]:
    if "://" not in text and "www." not in text.lower():
        return
    for m in _URL.finditer(text):
        url = _trim_url(m.group())
        if _url_has_private_parts(url):
            yield PIIMatch(m.start(), m.start() + len(url), "url")


def _find_ips(text: str) -> Iterator[PIIMatch]:
    if "." in text:
        for m in _IPV4.finditer(text):
            if _VERSION_WORDS.search(text, max(0, m.start() - 12), m.start()):
                continue
            if m.end() - m.start() == 7:  # four single digits: a version, not a person's IP
                continue
            yield PIIMatch(m.start(), m.end(), "ip")
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            value, end = m.group(), m.end()
            if value.endswith(":") and not value.endswith("::"):  # "... fe80::1: next"
                value, end = value[:-1], end - 1
            if value.count(":") < 2 or not any(c.isdigit() for c in value):
                continue
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                continue
            yield PIIMatch(m.start(), end, "ip")


def _trim_phone(raw: str) -> str | None:
    """Cut trailing groups until the number has at most 15 digits; None when below 8."""
    while sum(c.isdigit() for c in raw) > 15:
        cut = max(raw.rfind(" "), raw.rfind("-"), raw.rfind("."))
        if cut <= 0:
            return None
        raw = raw[:cut]
    return raw


def _find_phones(text: str) -> Iterator[PIIMatch]:
    for m in _NANP.finditer(text):
        yield PIIMatch(m.start(), m.end(), "phone")
    if "+" in text or "00" in text:
        for m in _INTERNATIONAL.finditer(text):
            raw = m.group()
            if raw.startswith("00"):
                raw = raw[2:]
                if not re.search(r"[ .\-(]", raw):  # 00 + bare digits: more likely a code
                    continue
            trimmed = _trim_phone(raw.replace("(0)", ""))
            if trimmed is None or sum(c.isdigit() for c in trimmed) < 8:
                continue
            # Map the trimmed length back onto the original match.
            end = m.end() - (len(raw.replace("(0)", "")) - len(trimmed))
            yield PIIMatch(m.start(), end, "phone")
    if "0" in text:
        for m in _NATIONAL.finditer(text):
            if 9 <= sum(c.isdigit() for c in m.group()) <= 12:
                yield PIIMatch(m.start(), m.end(), "phone")


_FINDERS: dict[str, Callable[[str], Iterator[PIIMatch]]] = {
    "email": _find_emails,
    "phone": _find_phones,
    "card": _find_cards,
    "ip": _find_ips,
    "url": _find_urls,
}


class Scrubber:
    """Finds and replaces personal data in text, as set by a :class:`ScrubConfig`.

    ::

        scrubber = Scrubber(ScrubConfig(custom_patterns={"ORDER": r"ORD-\\d{8}"}))
        scrubber.scrub("Mail bob@example.com about ORD-12345678")
        # 'Mail [EMAIL] about [ORDER]'

    Args:
        config: What to replace; ``None`` replaces every built-in kind.
    """

    def __init__(self, config: ScrubConfig | None = None) -> None:
        self.config = config or ScrubConfig()
        self._custom = [
            (name.upper(), re.compile(pattern))
            for name, pattern in self.config.custom_patterns.items()
        ]

    def find(self, text: str) -> list[PIIMatch]:
        """The non-overlapping pieces of personal data in ``text``, in text order."""
        found: list[tuple[int, PIIMatch]] = []
        for rank, (name, pattern) in enumerate(self._custom):
            found.extend(
                (rank - len(self._custom), PIIMatch(m.start(), m.end(), name))
                for m in pattern.finditer(text)
                if m.end() > m.start()
            )
        if any(c.isdigit() for c in text) or "@" in text or "://" in text or "www." in text:
            for kind in self.config.types:
                found.extend((_PRIORITY[kind], m) for m in _FINDERS[kind](text))
        found.sort(key=lambda pm: (pm[0], pm[1].start - pm[1].end, pm[1].start))
        taken: list[PIIMatch] = []
        for _, m in found:
            if all(m.end <= t.start or m.start >= t.end for t in taken):
                taken.append(m)
        return sorted(taken, key=lambda m: m.start)

    def scrub(self, text: str) -> str:
        """``text`` with every piece of personal data replaced by its placeholder.

        Replacing can expose more: in ``a@b.co+x@example.com`` the second address only shows
        once the first is gone. So the text is scrubbed again until nothing changes (at most
        :data:`MAX_PASSES` times), which also makes scrubbing idempotent.
        """
        for _ in range(MAX_PASSES):
            out = self._replace(text)
            if out == text:
                break
            text = out
        return text

    def _replace(self, text: str) -> str:
        matches = self.find(text)
        if not matches:
            return text
        out, pos = [], 0
        for m in matches:
            out.append(text[pos : m.start])
            out.append(m.placeholder)
            pos = m.end
        out.append(text[pos:])
        return "".join(out)


@lru_cache(maxsize=32)
def _scrubber_for(config_json: str) -> Scrubber:
    return Scrubber(ScrubConfig.model_validate(json.loads(config_json)))


def scrubber_for(config: ScrubConfig | PrivacyConfig | None = None) -> Scrubber:
    """A (cached) :class:`Scrubber` for a scrub config or a ``[privacy]`` table."""
    if config is None:
        config = ScrubConfig()
    elif not isinstance(config, ScrubConfig):
        config = config.scrub_config()
    return _scrubber_for(config.model_dump_json())


def scrub_text(text: str, config: ScrubConfig | PrivacyConfig | None = None) -> str:
    """Replace personal data in one text by typed placeholders (``[EMAIL]``, ``[PHONE]``, ...).

    The entry point for every place free text comes in: item descriptions, preference
    sentences, anything a user types. A :class:`lmrec.privacy.PrivacyConfig` with
    ``scrub = false`` still scrubs here: a caller asks for it explicitly.

    Args:
        text: The text.
        config: What to replace; ``None`` replaces every built-in kind.
    """
    return scrubber_for(config).scrub(text)
