"""PII scrubbing: table tests of real-world formats, near misses, config and overlaps."""

from __future__ import annotations

import pytest

from lmrec.config import parse_config
from lmrec.errors import ConfigError
from lmrec.privacy import PrivacyConfig, Scrubber, ScrubConfig, luhn_ok, scrub_text

# (text, expected) — each positive case is embedded in a sentence so the boundaries count.
EMAILS = [
    "alice@example.com",
    "Bob.Smith@Example.COM",
    "first.last+tag@mail.example.co.uk",
    "j_doe99@sub-domain.example.org",
    "o'brien.x%y@example.io".replace("'", ""),
    "user-name@xn--bcher-kva.example",
    "a@b.co",
]
PHONES = [
    "+1 415 555 2671",
    "+1 (415) 555-2671",
    "+1-415-555-2671",
    "+14155552671",
    "(415) 555-2671",
    "(415)555-2671",
    "415-555-2671",
    "415.555.2671",
    "415 555 2671",
    "1-800-555-0199",
    "1 (800) 555-0199",
    "+44 20 7946 0958",
    "+44 (0)20 7946 0958",
    "+44 7700 900123",
    "0044 20 7946 0958",
    "+49 30 12345678",
    "+49 (0)30 12345678",
    "+49-30-1234-5678",
    "+33 1 23 45 67 89",
    "+33 6 12 34 56 78",
    "+91-98765-43210",
    "+91 98765 43210",
    "+81 3-1234-5678",
    "+86 10 1234 5678",
    "+61 2 9876 5432",
    "+55 11 91234-5678",
    "+7 495 123-45-67",
    "020 7946 0958",
    "07700 900123",
    "030 12345678",
    "(030) 1234567",
    "030/1234567",
    "01 23 45 67 89",
    "06.12.34.56.78",
    "089-1234-5678",
]
# Luhn-valid test numbers of the major networks, as people write them.
CARDS = [
    "4111111111111111",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "5500 0000 0000 0004",
    "5555555555554444",
    "2223 0031 2200 3222",
    "378282246310005",
    "3782 822463 10005",
    "3714-496353-98431",
    "6011 1111 1111 1117",
    "6011000990139424",
    "3530 1113 3330 0000",
    "3056 9309 0259 04",
    "4222222222222",
    "6304 0000 0000 0000 018",
]
IPS = [
    "192.168.0.1",
    "10.0.0.254",
    "203.0.113.7",
    "255.255.255.255",
    "100.64.0.10",
    "2001:db8::1",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "fe80::1",
    "::1",
    "2001:db8:0:0:1:0:0:1",
    "::ffff:192.0.2.128",
    "2606:4700:4700::1111",
]
URLS = [
    "https://shop.example.com/item?id=123&ref=abc",
    "http://www.example.org/search?q=alice+smith#results",
    "www.example.com/path?session=XYZ123",
    "https://example.com/?utm_source=mail&uid=42",
    "https://accounts.example.com/cb#access_token=abc.def&state=1",
    "https://user:secret@host.example.com/private",
    "ftp://files.example.net/get?file=report.pdf",
    "HTTPS://EXAMPLE.COM/A?B=C",
    "https://[2001:db8::1]:8443/api?key=k",
]

POSITIVES = (
    [(e, "[EMAIL]") for e in EMAILS]
    + [(p, "[PHONE]") for p in PHONES]
    + [(c, "[CARD]") for c in CARDS]
    + [(i, "[IP]") for i in IPS]
    + [(u, "[URL]") for u in URLS]
)


@pytest.mark.parametrize(("value", "placeholder"), POSITIVES)
@pytest.mark.parametrize("template", ["{}", "Reach me at {} today.", "({})", "x: {}, y"])
def test_pii_is_replaced_by_its_placeholder(value: str, placeholder: str, template: str) -> None:
    assert scrub_text(template.format(value)) == template.format(placeholder)


NEGATIVES = [
    # dates and times
    "2021-05-12",
    "12/05/2021",
    "05.12.2021",
    "03.05.2021 14:00",
    "2021-05-12T10:30:00Z",
    "May 12, 2021 at 10:30",
    "10:30:45",
    "1990-1995",
    "from 1979 to 1984",
    "Alien (1979)",
    # prices and quantities
    "$1,299.99",
    "€49.90",
    "1,000,000 units",
    "3.5 stars out of 5",
    "50% off",
    "pack of 12 x 250 ml",
    # versions and product model numbers
    "version 1.2.3",
    "v2.3.1",
    "version 1.2.3.4",
    "1.2.3.4",
    "8.8.8.8",
    "firmware 10.0.2.1",
    "Python 3.11.4",
    "Windows 10.0.19041.1",
    "SM-G960F",
    "WH-1000XM4",
    "RTX 3080",
    "iPhone 15 Pro",
    "ISO 9001:2015",
    "Model No. 0123-4567",
    # ids and codes
    "ISBN 978-3-16-148410-0",
    "ISBN 0-306-40615-2",
    "9780306406157",
    "EAN 4006381333931",
    "zip 94105",
    "zip 94105-1234",
    "order #123456",
    "tracking 1Z999AA10123456784",
    "4111 1111 1111 1112",
    "1234567812345678",
    "0000 0000 0000 0000",
    "123e4567-e89b-12d3-a456-426614174000",
    "sha1 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
    "#ff0000",
    "00:1A:2B:3C:4D:5E",
    "std::vector<int>",
    "a::b",
    "5551234",
    "555-1234",
    "4155552671",
    # coordinates, scores, math
    "37.7749, -122.4194",
    "score 4-3-2",
    "1 + 2 = 3",
    "+5 dexterity",
    # URLs without query strings, social handles
    "https://example.com/about",
    "http://en.wikipedia.org/wiki/Alien_(film)",
    "www.example.com",
    "see https://example.com/docs/page.html.",
    "@alice on social media",
    "alice@localhost",
    "name at example dot com",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_near_misses_are_kept(text: str) -> None:
    assert scrub_text(text) == text


def test_pii_inside_a_kept_url_is_still_replaced() -> None:
    assert scrub_text("http://192.168.1.1/admin") == "http://[IP]/admin"
    assert scrub_text("https://example.com/u/alice@example.com") == "https://example.com/u/[EMAIL]"


def test_a_url_with_a_query_wins_over_what_it_contains() -> None:
    text = "go to https://x.example.com/r?to=alice@example.com&ip=10.0.0.1 now"
    assert scrub_text(text) == "go to [URL] now"


def test_several_kinds_in_one_text() -> None:
    text = (
        "Ship to alice@example.com, call +44 20 7946 0958, paid with 4111 1111 1111 1111 "
        "from 192.168.0.1 (order 2021-05-12, $19.99)."
    )
    assert scrub_text(text) == (
        "Ship to [EMAIL], call [PHONE], paid with [CARD] from [IP] (order 2021-05-12, $19.99)."
    )


def test_a_card_inside_a_longer_digit_run_is_found() -> None:
    assert scrub_text("in 2019 4111 1111 1111 1111 ok") == "in 2019 [CARD] ok"
    assert scrub_text("4111 1111 1111 1111 5500 0000 0000 0004") == "[CARD] [CARD]"


def test_luhn() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")
    assert luhn_ok("4111111111111111")


def test_types_can_be_switched_off() -> None:
    scrubber = Scrubber(ScrubConfig(types=("email",)))
    text = "alice@example.com 415-555-2671 https://x.com/?a=1"
    assert scrubber.scrub(text) == "[EMAIL] 415-555-2671 https://x.com/?a=1"


def test_custom_patterns_get_their_placeholder_and_win_overlaps() -> None:
    config = ScrubConfig(custom_patterns={"order": r"ORD-\d{8}", "Member_Id": r"M\d{6}"})
    text = "ORD-41555526 for M123456 (alice@example.com)"
    assert scrub_text(text, config) == "[ORDER] for [MEMBER_ID] ([EMAIL])"
    # a custom pattern covering a phone number takes the whole span
    config = ScrubConfig(custom_patterns={"HOTLINE": r"hotline \d{3}-\d{3}-\d{4}"})
    assert scrub_text("hotline 415-555-2671", config) == "[HOTLINE]"


def test_scrub_text_accepts_a_privacy_table() -> None:
    privacy = PrivacyConfig(scrub_types=("phone",), custom_patterns={"TICKET": r"T-\d+"})
    assert scrub_text("T-77 alice@example.com 415-555-2671", privacy) == (
        "[TICKET] alice@example.com [PHONE]"
    )


@pytest.mark.parametrize(
    ("patterns", "needle"),
    [
        ({"EMAIL": "x"}, "built-in"),
        ({"bad name": "x"}, "bad name"),
        ({"A": "("}, "not a valid regex"),
        ({"A": "x*"}, "empty string"),
        ({"Ab": "x", "AB": "y"}, "twice"),
    ],
)
def test_bad_custom_patterns_name_the_field(patterns: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=r"privacy\.custom_patterns") as info:
        parse_config({"model": {"type": "pop"}, "privacy": {"custom_patterns": patterns}})
    assert needle in str(info.value)


def test_unknown_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"privacy\.scrub_types"):
        parse_config({"model": {"type": "pop"}, "privacy": {"scrub_types": ["ssn"]}})


def test_find_reports_spans_and_kinds() -> None:
    text = "mail a@b.co or 203.0.113.7"
    found = Scrubber().find(text)
    assert [(text[m.start : m.end], m.kind) for m in found] == [
        ("a@b.co", "email"),
        ("203.0.113.7", "ip"),
    ]


def test_scrub_dataset_scrubs_item_and_user_text_but_not_ids() -> None:
    import pandas as pd

    from lmrec.data import Dataset
    from lmrec.privacy import scrub_dataset

    items = pd.DataFrame(
        {
            "item_id": ["a@b.co", "i2"],
            "title": ["Mail x@y.com", "Plain (1979)"],
            "categories": [("call 415-555-2671",), ("Drama",)],
        }
    )
    inter = pd.DataFrame({"user_id": ["u@v.co"], "item_id": ["i2"], "timestamp": [1]})
    users = pd.DataFrame({"user_id": ["u@v.co"], "bio": ["ip 10.1.2.3"], "age": [3]})
    out = scrub_dataset(Dataset("d", inter, items, users))
    assert list(out.items["item_id"]) == ["a@b.co", "i2"]
    assert list(out.items["title"]) == ["Mail [EMAIL]", "Plain (1979)"]
    assert list(out.items["categories"]) == [("call [PHONE]",), ("Drama",)]
    assert out.users is not None
    assert list(out.users["bio"]) == ["ip [IP]"] and list(out.users["age"]) == [3]
    assert list(out.interactions["user_id"]) == ["u@v.co"]


def test_scrub_new_item() -> None:
    from lmrec.items import NewItem
    from lmrec.privacy import scrub_new_item

    item = NewItem("m1", "Dune, ask a@b.co", "see https://x.com/?ref=7", ("4111 1111 1111 1111",))
    out = scrub_new_item(item)
    assert out == NewItem("m1", "Dune, ask [EMAIL]", "see [URL]", ("[CARD]",))


@pytest.mark.parametrize(
    "text",
    ["1 " * 5000, "0 " * 5000, "12-" * 3000, "1234 " * 2000, "+12 " * 3000, "ab:" * 3000],
)
def test_long_adversarial_runs_take_linear_time(text: str) -> None:
    import time

    start = time.perf_counter()
    scrub_text(text)
    assert time.perf_counter() - start < 2.0  # ~0.1 s; a quadratic rule would take minutes
