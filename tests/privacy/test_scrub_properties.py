"""Property tests of the scrubber: text without PII is left alone, scrubbing is idempotent,
and PII embedded anywhere in harmless text is removed."""

from __future__ import annotations

import re
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmrec.privacy import Scrubber, scrub_text
from lmrec.privacy.scrub_eval import (
    KNOWN_FALSE_POSITIVE,
    confusable_token,
    make_card,
    make_email,
    make_ip,
    make_phone,
    make_url,
)

FAST = settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

WORDS = st.text(alphabet=string.ascii_letters + "éüßçø", min_size=1, max_size=10)
PUNCT = st.sampled_from([" ", ", ", ". ", "; ", " - ", " (", ") ", ": ", "! ", "\n"])

# Arbitrary text without digits and without '@', '?', '#', '=': none of the built-in kinds
# can occur in it (every one needs a digit, an '@' or a query).
NO_PII_CHARS = st.text(
    alphabet=st.characters(
        blacklist_characters="@?#=0123456789", blacklist_categories=("Nd", "Cs")
    ),
    max_size=200,
)


@FAST
@given(NO_PII_CHARS)
def test_text_without_digits_or_at_signs_is_unchanged(text: str) -> None:
    assert scrub_text(text) == text


def _sentence(tokens: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    # words between tokens, so that two numbers never join into a longer one
    pair = st.tuples(WORDS, PUNCT, tokens, PUNCT)
    return st.lists(pair, min_size=1, max_size=8).map(
        lambda parts: "".join(w + p + t + q for w, p, t, q in parts)
    )


@FAST
@given(st.data())
def test_words_and_confusable_numbers_are_unchanged(data: st.DataObject) -> None:
    # dates, prices, versions, years, model numbers, ISBNs, non-Luhn card-like runs, ...
    seed = data.draw(st.integers(0, 2**32 - 1))
    tokens = (
        st.integers(0, 10**6)
        .map(lambda i: confusable_token(seed + i))
        .filter(lambda tk: tk[1] not in (KNOWN_FALSE_POSITIVE, "barcode"))
        .map(lambda tk: tk[0])
    )
    text = data.draw(_sentence(tokens))
    assert scrub_text(text) == text


# make_phone emits the documented misses (7-digit local, bare 10-digit numbers) 3% of the
# time; they are out of scope for a property that every generated PII token is found.
_DOCUMENTED_MISS = re.compile(r"\d{3}-\d{4}|\d{10}")

PII = (
    st.integers(0, 2**32 - 1)
    .flatmap(
        lambda s: st.sampled_from(
            [make_email(s), make_phone(s), make_card(s), make_ip(s), make_url(s)]
        )
    )
    .filter(lambda token: _DOCUMENTED_MISS.fullmatch(token) is None)
)


@FAST
@given(_sentence(PII))
def test_pii_in_harmless_text_leaves_no_trace(text: str) -> None:
    found = Scrubber().find(text)
    out = scrub_text(text)
    assert found
    for m in found:
        assert text[m.start : m.end] not in out


@FAST
@given(st.one_of(st.text(max_size=200), _sentence(PII), _sentence(st.text(string.printable))))
def test_scrubbing_is_idempotent(text: str) -> None:
    once = scrub_text(text)
    assert scrub_text(once) == once


@FAST
@given(
    st.lists(
        st.one_of(PII, st.text(alphabet="0123456789 -.+()@:/?=&", max_size=12)),
        max_size=6,
    ).map("".join)
)
def test_scrubbing_is_idempotent_on_dense_digit_soup(text: str) -> None:
    once = scrub_text(text)
    assert scrub_text(once) == once
