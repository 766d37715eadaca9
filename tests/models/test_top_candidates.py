"""``top_candidates`` (two-pass fast path and general path) against a plain sort."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lmrec.models.ctr import top_candidates

VALUES = st.sampled_from([0.0, 0.5, 1.0, -1.0, 2.0, np.nan, np.inf, -np.inf, 1e-30])


def reference(scores: np.ndarray, history: np.ndarray, top_n: int) -> list[int]:
    """Finite, non-history items by score descending, ties to the lower index."""
    row = np.asarray(scores, dtype=np.float64)
    banned = set(history.tolist())
    ok = [i for i in range(len(row)) if np.isfinite(row[i]) and i not in banned]
    return sorted(ok, key=lambda i: (-row[i], i))[:top_n]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    values=st.lists(st.one_of(VALUES, st.floats(-3, 3, width=32)), min_size=1, max_size=40),
    top_n=st.integers(1, 45),
    float32=st.booleans(),
    data=st.data(),
)
def test_matches_a_plain_sort(
    values: list[float], top_n: int, float32: bool, data: st.DataObject
) -> None:
    scores = np.asarray(values, dtype=np.float32 if float32 else np.float64)
    history = np.asarray(
        data.draw(st.lists(st.integers(0, len(values) - 1), max_size=5)), dtype=np.int64
    )
    got = top_candidates(scores, history, top_n)
    assert got.dtype == np.int64
    assert got.tolist() == reference(scores, history, top_n)
    assert np.array_equal(scores, np.asarray(values, dtype=scores.dtype), equal_nan=True)


def test_large_row_with_ties_and_history() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 50, size=100_000).astype(np.float32)  # many ties
    history = rng.choice(100_000, size=300, replace=False)
    assert top_candidates(scores, history, 25).tolist() == reference(scores, history, 25)
