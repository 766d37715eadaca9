"""Precision and recall of the scrubber on the labelled set built by construction."""

from __future__ import annotations

import re

import pytest

from lmrec.privacy import PII_TYPES, Scrubber, scrub_text
from lmrec.privacy.scrub_eval import evaluate_scrubber, labelled_sentences


@pytest.fixture(scope="module")
def report() -> dict:
    return evaluate_scrubber(Scrubber(), labelled_sentences(500, seed=0))


def test_the_set_is_seeded_and_labelled_by_construction() -> None:
    a, b = labelled_sentences(50, seed=3), labelled_sentences(50, seed=3)
    assert a == b
    assert a != labelled_sentences(50, seed=4)
    kinds = {k for s in labelled_sentences(200, seed=0) for _, _, k in s.spans}
    assert kinds == set(PII_TYPES)
    for sentence in a:
        for start, end, _ in sentence.spans:
            value = sentence.text[start:end]
            assert value.strip() == value and value


def test_precision_and_recall_are_high(report: dict) -> None:
    micro = report["micro"]
    assert micro["support"] > 500
    assert micro["precision"] >= 0.95
    assert micro["recall"] >= 0.95
    for kind, scores in report["per_type"].items():
        assert scores["support"] >= 80, kind
        assert scores["recall"] >= 0.93, kind
        assert scores["precision"] >= 0.8, kind


def test_every_error_is_a_documented_limitation() -> None:
    # Misses: 7-digit local and bare 10-digit phone numbers. False alarms: four-part version
    # numbers read as IPv4, unlabelled barcodes that pass the Luhn check.
    sentences = labelled_sentences(500, seed=0)
    scrubber = Scrubber()
    for sentence in sentences:
        gold = set(sentence.spans)
        found = {(m.start, m.end, m.kind) for m in scrubber.find(sentence.text)}
        for start, end, kind in gold - found:
            assert kind == "phone"
            assert re.fullmatch(r"\d{3}-\d{4}|\d{10}", sentence.text[start:end])
        for start, end, kind in found - gold:
            value = sentence.text[start:end]
            assert (kind, bool(re.fullmatch(r"\d+(\.\d+){3}", value))) == ("ip", True) or (
                kind == "card" and re.fullmatch(r"4[0-4]\d{11}", value)
            ), value


def test_scrubbed_sentences_hold_no_labelled_value() -> None:
    for sentence in labelled_sentences(300, seed=1):
        out = scrub_text(sentence.text)
        for start, end, _ in sentence.spans:
            value = sentence.text[start:end]
            if not re.fullmatch(r"\d{3}-\d{4}|\d{10}", value):  # documented misses
                assert value not in out
