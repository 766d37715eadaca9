"""The on-disk vector cache and encode_items: hits, misses, restarts, damaged files."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lmrec.text.cache as cache_module
from lmrec.data.schema import Dataset
from lmrec.errors import ConfigError
from lmrec.text import (
    ItemTextEncoder,
    VectorCache,
    encode_items,
    encode_texts,
    encoder_cache_key,
    item_texts,
    text_digest,
)


def make_dataset(titles: Sequence[str]) -> Dataset:
    n = len(titles)
    genres = [("Horror", "Sci-Fi"), ("Comedy",), ()] * n
    items = pd.DataFrame(
        {
            "item_id": [str(i + 1) for i in range(n)],
            "title": list(titles),
            "genres": [", ".join(g) for g in genres[:n]],
            "categories": pd.Series(genres[:n], dtype=object),
        }
    )
    interactions = pd.DataFrame(
        {"user_id": ["u1"], "item_id": ["1"], "timestamp": np.array([1], dtype=np.int64)}
    )
    return Dataset("tiny", interactions, items, text_fields=("title", "genres"))


TITLES = ["Alien (1979)", "Toy Story (1995)", "Heat (1995)", "Fargo (1996)", "Babe (1995)"]


class EncodeSpy:
    """Counts the texts that reach ``encoder.encode``; can fail on a given call."""

    def __init__(self, encoder: ItemTextEncoder, fail_on_call: int | None = None) -> None:
        self.original = encoder.encode
        self.calls: list[int] = []
        self.fail_on_call = fail_on_call

    def __call__(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        self.calls.append(len(texts))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt
        return self.original(texts, show_progress=show_progress)

    @property
    def encoded(self) -> int:
        return sum(self.calls)


@pytest.fixture
def spy(minilm: ItemTextEncoder, monkeypatch: pytest.MonkeyPatch) -> Iterator[EncodeSpy]:
    spy = EncodeSpy(minilm)
    monkeypatch.setattr(minilm, "encode", spy)
    yield spy


def test_item_texts_use_field_names_in_item_order() -> None:
    texts = item_texts(make_dataset(TITLES[:3]))
    assert texts == [
        "title: Alien (1979); genres: Horror, Sci-Fi",
        "title: Toy Story (1995); genres: Comedy",
        "title: Heat (1995)",
    ]
    assert item_texts(make_dataset(TITLES[:1]), ["title"]) == [
        "title: Alien (1979); categories: Horror, Sci-Fi"
    ]


def test_unknown_field_names_the_field() -> None:
    with pytest.raises(ConfigError, match="'brand'"):
        item_texts(make_dataset(TITLES), ["title", "brand"])


def test_second_call_is_a_cache_hit(
    minilm: ItemTextEncoder, spy: EncodeSpy, tmp_path: Path
) -> None:
    dataset = make_dataset(TITLES)
    first = encode_items(dataset, minilm, cache_dir=tmp_path)
    assert spy.encoded == len(TITLES)
    np.testing.assert_allclose(first, spy.original(item_texts(dataset)), atol=1e-6)
    second = encode_items(dataset, minilm, cache_dir=tmp_path)
    assert spy.encoded == len(TITLES)  # nothing more was encoded
    np.testing.assert_array_equal(first, second)


def test_changed_text_is_a_cache_miss(
    minilm: ItemTextEncoder, spy: EncodeSpy, tmp_path: Path
) -> None:
    before = encode_items(make_dataset(TITLES), minilm, cache_dir=tmp_path)
    changed = [*TITLES[:2], "Heat (1995) director's cut", *TITLES[3:]]
    after = encode_items(make_dataset(changed), minilm, cache_dir=tmp_path)
    assert spy.calls == [len(TITLES), 1]
    np.testing.assert_array_equal(np.delete(after, 2, axis=0), np.delete(before, 2, axis=0))
    assert float(after[2] @ before[2]) < 0.999


def test_repeated_texts_are_encoded_once(
    minilm: ItemTextEncoder, spy: EncodeSpy, tmp_path: Path
) -> None:
    out = encode_texts(minilm, ["a", "b", "a", "a"], cache_dir=tmp_path)
    assert spy.encoded == 2
    np.testing.assert_array_equal(out[0], out[2])


def test_cache_off_encodes_everything_and_writes_nothing(
    minilm: ItemTextEncoder, spy: EncodeSpy, tmp_path: Path
) -> None:
    for _ in range(2):
        encode_items(make_dataset(TITLES), minilm, cache=False, cache_dir=tmp_path)
    assert spy.encoded == 2 * len(TITLES)
    assert not (tmp_path / "vectors").exists()


def test_interrupted_encode_resumes_where_it_stopped(
    minilm: ItemTextEncoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cache_module, "CHUNK_BATCHES", 1)  # chunks of batch_size = 4 texts
    texts = [f"title: Film number {i}" for i in range(10)]
    crashing = EncodeSpy(minilm, fail_on_call=3)
    monkeypatch.setattr(minilm, "encode", crashing)
    with pytest.raises(KeyboardInterrupt):
        encode_texts(minilm, texts, cache_dir=tmp_path)
    assert crashing.calls == [4, 4, 2]  # the third chunk was interrupted
    resumed = EncodeSpy(minilm)
    monkeypatch.setattr(minilm, "encode", resumed)
    out = encode_texts(minilm, texts, cache_dir=tmp_path)
    assert resumed.calls == [2]
    np.testing.assert_allclose(out, resumed.original(texts), atol=1e-5)


def test_interrupted_write_leaves_no_shard(
    minilm: ItemTextEncoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken_savez(file: object, **arrays: np.ndarray) -> None:
        file.write(b"PK\x03\x04 half a zip")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    store = VectorCache.for_encoder(minilm, tmp_path)
    monkeypatch.setattr(cache_module.np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        store.add([text_digest("a")], np.ones((1, minilm.dim), dtype=np.float32))
    monkeypatch.undo()
    assert store.shard_count() == 0
    assert not list(store.directory.glob(".tmp-*"))
    _, found = VectorCache.for_encoder(minilm, tmp_path).lookup([text_digest("a")])
    assert not found.any()


def test_damaged_shards_are_ignored(
    minilm: ItemTextEncoder, spy: EncodeSpy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = encode_texts(minilm, ["one", "two"], cache_dir=tmp_path)
    directory = VectorCache.for_encoder(minilm, tmp_path).directory
    (directory / "shard-0-garbage.npz").write_bytes(b"not a zip file")
    np.savez(
        directory / "shard-1-wrongdim.npz", keys=np.array([b"x" * 32]), vectors=np.ones((1, 3))
    )
    (directory / ".tmp-leftover-shard-2.npz").write_bytes(b"partial")
    again = encode_texts(minilm, ["one", "two", "three"], cache_dir=tmp_path)
    assert spy.calls == [2, 1]
    np.testing.assert_array_equal(again[:2], first)
    assert "ignoring" in caplog.text


def test_compaction_merges_shards_and_keeps_every_vector(
    minilm: ItemTextEncoder, tmp_path: Path
) -> None:
    store = VectorCache.for_encoder(minilm, tmp_path)
    rng = np.random.default_rng(0)
    digests = [text_digest(str(i)) for i in range(6)]
    vectors = rng.normal(size=(6, minilm.dim)).astype(np.float32)
    for i in range(0, 6, 2):
        store.add(digests[i : i + 2], vectors[i : i + 2])
    assert store.shard_count() == 3
    store.compact(max_shards=1)
    assert store.shard_count() == 1
    fresh = VectorCache.for_encoder(minilm, tmp_path)  # as after a restart
    got, found = fresh.lookup(digests)
    assert found.all()
    np.testing.assert_array_equal(got, vectors)
    assert len(fresh) == 6


def test_cache_key_depends_on_what_changes_vectors(minilm: ItemTextEncoder) -> None:
    keys = {encoder_cache_key(minilm)}
    for update in ({"max_length": 32}, {"normalize": False}, {"pooling": "cls"}):
        variant = copy.copy(minilm)
        variant.config = minilm.config.model_copy(update=update)
        if "pooling" in update:
            variant.pooling = "cls"
        keys.add(encoder_cache_key(variant))
    same = copy.copy(minilm)
    same.config = minilm.config.model_copy(update={"batch_size": 128, "cache": False})
    keys.add(encoder_cache_key(same))
    assert len(keys) == 4
