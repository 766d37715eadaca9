"""load_dataset: names, paths, format detection, offline errors, download checks, the cache."""

from __future__ import annotations

import hashlib
import urllib.error
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from lmrec.data import registry
from lmrec.data.loaders.tabular import TableSource
from lmrec.data.registry import Archive, DatasetInfo, load_dataset
from lmrec.data.schema import ITEM, RATING, TIME, Dataset
from lmrec.errors import DataError, DatasetNotFoundError

ITEM_LINE = "{i}|Film {i} (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 18 + ["1"])


def write_100k(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "u.data").write_text("1\t1\t5\t10\n1\t2\t4\t11\n2\t2\t3\t12\n")
    (directory / "u.item").write_text("\n".join(ITEM_LINE.format(i=i) for i in (1, 2)) + "\n")
    return directory


def make_zip(path: Path, top: str = "ml-100k") -> Path:
    source = write_100k(path.parent / "zip-src")
    with zipfile.ZipFile(path, "w") as archive:
        for file in source.iterdir():
            archive.write(file, f"{top}/{file.name}")
    return path


@pytest.fixture
def local_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the ml-100k entry at a local zip with its real checksum."""
    zip_path = make_zip(tmp_path / "served" / "ml-100k.zip")
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    info = registry.DATASETS["ml-100k"]
    archive = Archive(url=zip_path.as_uri(), size=zip_path.stat().st_size, sha256=digest)
    monkeypatch.setitem(
        registry.DATASETS,
        "ml-100k",
        DatasetInfo(name=info.name, marker=info.marker, loader=info.loader, archive=archive),
    )
    return zip_path


def test_named_dataset_from_data_dir_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_100k(tmp_path / "data" / "ml-100k")
    ds = load_dataset("ml-100k", data_dir=tmp_path / "data", download=False)
    assert ds.name == "ml-100k" and len(ds.interactions) == 3
    monkeypatch.setenv("LMREC_DATA_DIR", str(tmp_path / "data"))
    assert load_dataset("ml-100k", download=False).n_items == 2


def test_offline_error_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMREC_DATA_DIR", str(tmp_path / "nothing"))

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(registry.urllib.request, "urlopen", offline)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("ml-1m", cache_dir=tmp_path / "cache", show_progress=False)
    message = str(info.value)
    assert str(tmp_path / "nothing" / "ml-1m") in message
    assert str(tmp_path / "cache" / "datasets" / "ml-1m") in message
    assert "Name or service not known" in message and "LMREC_DATA_DIR" in message
    assert not (tmp_path / "cache" / "datasets" / "ml-1m").exists()

    with pytest.raises(DatasetNotFoundError, match="downloading is off"):
        load_dataset("ml-1m", cache_dir=tmp_path / "cache", download=False)


def test_amazon_is_not_downloadable(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"cannot be downloaded automatically.*UniSRec"):
        load_dataset("amazon-scientific", data_dir=tmp_path, cache_dir=tmp_path / "c")


def test_download_verifies_and_extracts_into_cache(tmp_path: Path, local_archive: Path) -> None:
    cache = tmp_path / "cache"
    ds = load_dataset("ml-100k", data_dir=tmp_path / "none", cache_dir=cache, show_progress=False)
    assert ds.n_items == 2
    assert (cache / "datasets" / "ml-100k" / "u.data").is_file()
    assert not list((cache / "datasets").glob(".ml-100k-*"))  # temporary folder removed
    assert not (local_archive.parent / "ml-100k").exists()  # nothing beside the source
    # second call: found in the cache, no download (the archive is gone)
    local_archive.unlink()
    assert load_dataset("ml-100k", data_dir=tmp_path / "none", cache_dir=cache).n_items == 2


def test_checksum_mismatch_is_refused(
    tmp_path: Path, local_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = registry.DATASETS["ml-100k"]
    assert info.archive is not None
    bad = Archive(url=info.archive.url, sha256="0" * 64)
    monkeypatch.setitem(
        registry.DATASETS,
        "ml-100k",
        DatasetInfo(name=info.name, marker=info.marker, loader=info.loader, archive=bad),
    )
    with pytest.raises(DataError, match="SHA256 checksum mismatch"):
        load_dataset(
            "ml-100k", data_dir=tmp_path / "x", cache_dir=tmp_path / "c", show_progress=False
        )
    assert not (tmp_path / "c" / "datasets" / "ml-100k").exists()


def test_size_mismatch_and_damaged_zip(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "a.zip")
    with pytest.raises(DataError, match=r"downloaded [0-9]+ bytes from u, expected 1:"):
        registry.verify_archive(path, Archive(url="u", size=1))
    path.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        registry.extract_zip(path, tmp_path / "out")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("../../escape.txt", "x")
    with pytest.raises(DataError, match="unsafe member path"):
        registry.extract_zip(tmp_path / "evil.zip", tmp_path / "out")
    assert not (tmp_path.parent / "escape.txt").exists()


def test_known_checksums_are_well_formed() -> None:
    for info in registry.DATASETS.values():
        if info.archive is None:
            continue
        assert info.archive.url.startswith("https://files.grouplens.org/datasets/movielens/")
        assert info.archive.sha256 or info.archive.md5
        if info.archive.sha256:
            assert len(info.archive.sha256) == 64


def test_directory_detection(tmp_path: Path) -> None:
    assert load_dataset(write_100k(tmp_path / "a")).name == "a"
    dat = tmp_path / "b"
    dat.mkdir()
    (dat / "ratings.dat").write_text("1::1::5::1\n")
    (dat / "movies.dat").write_text("1::A (1999)::Drama\n")
    assert load_dataset(dat).n_items == 1
    rec = tmp_path / "c"
    rec.mkdir()
    (rec / "x.inter").write_text("user_id:token\titem_id:token\nu\ti\n")
    assert load_dataset(rec).name == "x"
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match="cannot tell the dataset format"):
        load_dataset(tmp_path / "d")


def test_files_and_table_source(tmp_path: Path) -> None:
    csv = tmp_path / "events.csv"
    csv.write_text("user_id,item_id,timestamp\na,1,5\nb,2,6\n")
    ds = load_dataset(csv)
    assert ds.interactions[TIME].tolist() == [5, 6] and RATING not in ds.interactions.columns
    frame = pd.DataFrame({"user_id": ["a"], "item_id": ["x"], "rating": [4.0]})
    frame.to_parquet(tmp_path / "e.parquet")
    assert load_dataset(tmp_path / "e.parquet").interactions[RATING].tolist() == [4.0]
    source = TableSource(path=csv, time_col="timestamp", name="mine")
    assert load_dataset(source).name == "mine"
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match=r"unsupported file type '\.json'"):
        load_dataset(tmp_path / "x.json")
    with pytest.raises(DatasetNotFoundError, match=r"no dataset named 'ml-5k'.*known names"):
        load_dataset("ml-5k")


def test_parsed_cache_is_reused_and_invalidated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = write_100k(tmp_path / "ml")
    cache = tmp_path / "cache"
    first = load_dataset(directory, cache_dir=cache)
    assert list((cache / "parsed").iterdir())
    calls: list[Path] = []
    real = registry.load_directory

    def counting(path: Path) -> Dataset:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(registry, "load_directory", counting)
    again = load_dataset(directory, cache_dir=cache)
    assert calls == []  # served from the cache
    assert again.fingerprint() == first.fingerprint()
    assert again.items[ITEM].tolist() == first.items[ITEM].tolist()
    assert again.items["categories"].tolist() == first.items["categories"].tolist()
    assert again.text_fields == first.text_fields

    (directory / "u.data").write_text("1\t1\t5\t10\n")  # a changed file is parsed again
    changed = load_dataset(directory, cache_dir=cache)
    assert calls == [directory] and len(changed.interactions) == 1
    assert len(list((cache / "parsed").iterdir())) == 1  # the entry was replaced

    load_dataset(directory, cache_dir=cache, use_cache=False)
    assert len(calls) == 2


def test_damaged_cache_entry_is_ignored(tmp_path: Path) -> None:
    directory = write_100k(tmp_path / "ml")
    cache = tmp_path / "cache"
    load_dataset(directory, cache_dir=cache)
    (entry,) = (cache / "parsed").iterdir()
    (entry / "items.parquet").write_bytes(b"garbage")
    assert load_dataset(directory, cache_dir=cache).n_items == 2


def test_parallel_cache_writers_keep_one_entry_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two processes parsing the same data at once: the second finds the first's entry in
    place when it renames its own; it keeps that one without a warning."""
    import os

    from lmrec.data import cache as cache_module

    directory = write_100k(tmp_path / "ml")
    cache = tmp_path / "cache"
    real_replace = os.replace

    def raced(src: Path, dst: Path) -> None:
        Path(dst).mkdir()
        (Path(dst) / "other-writer").write_text("x")
        real_replace(src, dst)

    monkeypatch.setattr(cache_module.os, "replace", raced)
    with caplog.at_level("WARNING", logger="lmrec"):
        assert load_dataset(directory, cache_dir=cache).n_items == 2
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    (entry,) = (cache / "parsed").iterdir()
    assert (entry / "other-writer").exists()  # the first writer's entry stays
    assert not list((cache / "parsed").glob(".*"))  # our temporary folder is gone
