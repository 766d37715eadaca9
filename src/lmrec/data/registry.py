"""Loading a dataset by name or path: finding it locally, downloading it, picking the loader.

Named datasets (:data:`DATASETS`) are looked up in ``<data_dir>/<name>`` (``data_dir`` or
``$LMREC_DATA_DIR``), then in the cache at ``<cache root>/datasets/<name>`` (see
:func:`lmrec.data.cache.cache_root`). The MovieLens sets are downloaded from GroupLens into
that cache when missing; the download is checked against the archive's known size and
SHA-256 (ML-100K, ML-1M) or MD5 (ML-10M), and the zip's integrity is tested before it is
extracted. Data folders given by the user are only ever read.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from lmrec.data.cache import ParsedDatasetCache, cache_root
from lmrec.data.loaders.movielens import load_movielens_100k, load_movielens_dat
from lmrec.data.loaders.recbole import load_recbole
from lmrec.data.loaders.tabular import PARQUET_SUFFIXES, TableSource, load_table_source
from lmrec.data.loaders.unisrec import load_unisrec
from lmrec.data.schema import ITEM, RATING, TIME, USER, Dataset
from lmrec.errors import DataError, DatasetNotFoundError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """A downloadable zip of a dataset.

    Args:
        url: Where to fetch it.
        size: Its size in bytes, when known.
        sha256: Its SHA-256 hex digest, when known.
        md5: Its MD5 hex digest, when known (checked only when no SHA-256 is recorded).
    """

    url: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset known by name.

    Args:
        name: The name users type (``"ml-100k"``).
        marker: A file whose presence in a folder means the dataset is there.
        loader: Reads the folder into a :class:`Dataset` named ``name``.
        archive: Where to download it, or ``None`` when it cannot be downloaded.
        how_to_get: Said in the error when the dataset is missing and not downloadable.
    """

    name: str
    marker: str
    loader: Callable[[Path, str], Dataset]
    archive: Archive | None = None
    how_to_get: str = ""


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"

# Sizes and SHA-256 digests of ML-100K and ML-1M as recorded by TensorFlow Datasets
# (tensorflow_datasets/url_checksums/movielens.txt). No SHA-256 of ML-10M was at hand; its MD5
# is the one public download scripts record from GroupLens's ml-10m.zip.md5 (not re-verified
# offline here). Where no digest is known, the zip's own CRC check guards the download.
DATASETS: dict[str, DatasetInfo] = {
    "ml-100k": DatasetInfo(
        name="ml-100k",
        marker="u.data",
        loader=lambda path, name: load_movielens_100k(path, name=name),
        archive=Archive(
            url=f"{_GROUPLENS}/ml-100k.zip",
            size=4924029,
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        ),
    ),
    "ml-1m": DatasetInfo(
        name="ml-1m",
        marker="ratings.dat",
        loader=lambda path, name: load_movielens_dat(path, name=name),
        archive=Archive(
            url=f"{_GROUPLENS}/ml-1m.zip",
            size=5917549,
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        ),
    ),
    "ml-10m": DatasetInfo(
        name="ml-10m",
        marker="ratings.dat",
        loader=lambda path, name: load_movielens_dat(path, name=name),
        archive=Archive(url=f"{_GROUPLENS}/ml-10m.zip", md5="ce571fd55effeba0271552578f2648bd"),
    ),
    "amazon-scientific": DatasetInfo(
        name="amazon-scientific",
        marker="Scientific.train.inter",
        loader=lambda path, name: load_unisrec(path, "Scientific", name=name),
        how_to_get=(
            "it cannot be downloaded automatically: it is the UniSRec preprocessing (Hou et "
            "al., KDD 2022) of the Amazon 2018 'Industrial and Scientific' reviews; get the "
            "files Scientific.{train,valid,test}.inter, .text, .item2index and .user2index "
            "from the UniSRec release"
        ),
    ),
}


def load_dataset(
    spec: str | Path | TableSource,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    *,
    use_cache: bool = True,
    show_progress: bool = True,
) -> Dataset:
    """Load a dataset by name, folder, file or table mapping.

    Args:
        spec: A name from :data:`DATASETS`; a folder (its format is told by the files in it:
            ``u.data``, ``ratings.dat``, ``*.train.inter`` or ``*.inter``); a ``.csv``,
            ``.tsv`` or ``.parquet`` file with columns ``user_id``, ``item_id`` and optionally
            ``timestamp`` and ``rating``; or a :class:`TableSource`.
        data_dir: Folder holding named datasets as subfolders; default ``$LMREC_DATA_DIR``.
        cache_dir: The cache root for downloads and parsed datasets, see
            :func:`lmrec.data.cache.cache_root`.
        download: Whether a missing MovieLens set may be downloaded.
        use_cache: Whether to reuse (and store) parsed datasets in the cache.
        show_progress: Whether to show a download progress bar.

    Raises:
        DatasetNotFoundError: A named dataset is neither found nor downloadable, or a path
            does not exist; the message says where it looked and how to point at a copy.
        DataError: The files are malformed.
    """
    root = cache_root(cache_dir)
    if isinstance(spec, TableSource):
        files = [p for p in (spec.path, spec.items_path, spec.users_path) if p is not None]
        source = f"table:{spec.model_dump_json()}"
        return _maybe_cached(root, use_cache, source, files, lambda: load_table_source(spec))
    if isinstance(spec, str) and spec in DATASETS:
        info = DATASETS[spec]
        directory = find_dataset(spec, data_dir, cache_dir, download, show_progress=show_progress)
        files = _files_in(directory)
        source = f"{info.name}:{directory.resolve()}"
        return _maybe_cached(
            root, use_cache, source, files, lambda: info.loader(directory, info.name)
        )
    path = Path(spec).expanduser()
    if not path.exists():
        known = ", ".join(DATASETS)
        raise DatasetNotFoundError(
            f"no dataset named {str(spec)!r} and no such file or directory (known names: {known})"
        )
    if path.is_dir():
        files = _files_in(path)
        source = f"dir:{path.resolve()}"
        return _maybe_cached(root, use_cache, source, files, lambda: load_directory(path))
    table = default_table_source(path)
    source = f"table:{table.model_dump_json()}"
    return _maybe_cached(root, use_cache, source, [path], lambda: load_table_source(table))


def load_directory(path: str | Path) -> Dataset:
    """Load a folder, telling its format by the files in it.

    Raises:
        DataError: No known format matches.
    """
    path = Path(path)
    if (path / "u.data").is_file():
        return load_movielens_100k(path)
    if (path / "ratings.dat").is_file():
        return load_movielens_dat(path)
    if any(p.is_file() for p in path.glob("*.train.inter")):
        return load_unisrec(path)
    if any(p.is_file() for p in path.glob("*.inter")):
        return load_recbole(path)
    raise DataError(
        "cannot tell the dataset format: expected u.data (MovieLens-100K), ratings.dat "
        "(MovieLens-1M/10M), <name>.train.inter (UniSRec) or <name>.inter (RecBole atomic files)",
        path=path,
    )


def default_table_source(path: str | Path) -> TableSource:
    """A :class:`TableSource` for a single table with the standard column names.

    ``user_id`` and ``item_id`` are required; ``timestamp`` and ``rating`` are used when
    present. ``.tsv`` files are tab separated, other text files comma separated.

    Raises:
        DataError: The file type is not supported or its header cannot be read.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (*PARQUET_SUFFIXES, ".csv", ".tsv"):
        raise DataError(
            f"unsupported file type {suffix or '(none)'!r}: expected .csv, .tsv or .parquet, "
            "or a dataset folder",
            path=path,
        )
    sep = "\t" if suffix == ".tsv" else ","
    columns = _header(path, sep)
    return TableSource(
        path=path,
        user_col=USER,
        item_col=ITEM,
        time_col=TIME if TIME in columns else None,
        rating_col=RATING if RATING in columns else None,
        sep=sep,
    )


def find_dataset(
    name: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    *,
    show_progress: bool = True,
) -> Path:
    """The folder holding the named dataset, downloading it into the cache when allowed.

    Raises:
        DatasetNotFoundError: Not found and not downloadable (or the download failed); the
            message lists where it looked and how to point at a local copy.
    """
    info = DATASETS.get(name)
    if info is None:
        raise DatasetNotFoundError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    candidates: list[tuple[Path, str]] = []
    base = data_dir if data_dir is not None else os.environ.get("LMREC_DATA_DIR")
    if base:
        where = "data_dir" if data_dir is not None else "LMREC_DATA_DIR"
        candidates.append((Path(base).expanduser() / name, where))
    cached = cache_root(cache_dir) / "datasets" / name
    candidates.append((cached, "cache"))
    for directory, _ in candidates:
        if (directory / info.marker).is_file():
            return directory

    looked = "; ".join(f"{d} ({why})" for d, why in candidates)
    hint = (
        f"set LMREC_DATA_DIR to a folder that holds {name}/ (with {info.marker}), or pass the "
        "dataset's folder as a path"
    )
    if info.archive is None:
        raise DatasetNotFoundError(
            f"dataset {name!r} not found in {looked}; {info.how_to_get}; {hint}"
        )
    if not download:
        raise DatasetNotFoundError(
            f"dataset {name!r} not found in {looked} and downloading is off; {hint}"
        )
    try:
        return download_dataset(info, cached.parent, show_progress=show_progress)
    except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
        reason = getattr(exc, "reason", None) or exc
        raise DatasetNotFoundError(
            f"dataset {name!r} not found in {looked}, and downloading {info.archive.url} "
            f"failed ({reason}); {hint}"
        ) from None


def download_dataset(info: DatasetInfo, datasets_dir: Path, *, show_progress: bool = True) -> Path:
    """Download, verify and extract a dataset into ``datasets_dir / info.name``.

    The archive is fetched into a temporary folder beside the destination, checked (size,
    digest, zip CRCs), extracted there, and moved into place only when complete.

    Raises:
        DataError: The archive fails a check or does not contain the dataset.
        urllib.error.URLError, OSError: The download failed.
    """
    assert info.archive is not None
    archive = info.archive
    datasets_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{info.name}-", dir=datasets_dir) as tmp:
        zip_path = Path(tmp) / "archive.zip"
        _fetch(archive.url, zip_path, desc=info.name, show_progress=show_progress)
        verify_archive(zip_path, archive)
        extracted = Path(tmp) / "extracted"
        extract_zip(zip_path, extracted)
        found = [p.parent for p in extracted.rglob(info.marker) if p.is_file()]
        if not found:
            raise DataError(f"the archive from {archive.url} has no {info.marker}")
        target = datasets_dir / info.name
        if target.exists():  # an incomplete earlier copy (no marker file)
            shutil.rmtree(target)
        os.replace(min(found, key=lambda p: len(p.parts)), target)
    return target


def verify_archive(path: Path, archive: Archive) -> None:
    """Check a downloaded file against the recorded size and digest.

    Raises:
        DataError: The size or digest differs.
    """
    size = path.stat().st_size
    if archive.size is not None and size != archive.size:
        raise DataError(
            f"downloaded {size} bytes from {archive.url}, expected {archive.size}: the "
            "download is incomplete or the file has changed"
        )
    algorithm, expected = ("sha256", archive.sha256) if archive.sha256 else ("md5", archive.md5)
    if expected is None:
        return
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected.lower():
        raise DataError(
            f"{algorithm.upper()} checksum mismatch for {archive.url}: got "
            f"{digest.hexdigest()}, expected {expected}"
        )


def extract_zip(path: Path, destination: Path) -> None:
    """Extract a zip after testing its CRCs; members may not leave ``destination``.

    Raises:
        DataError: The file is not a zip, is damaged, or has a member with an unsafe path.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise DataError(f"damaged archive: member {bad!r} fails its CRC check", path=path)
            root = destination.resolve()
            for member in archive.namelist():
                target = (destination / member).resolve()
                if not target.is_relative_to(root):
                    raise DataError(f"unsafe member path {member!r} in the archive", path=path)
            archive.extractall(destination)
    except zipfile.BadZipFile as exc:
        raise DataError(f"not a valid zip archive: {exc}", path=path) from None


def _fetch(url: str, destination: Path, *, desc: str, show_progress: bool) -> None:
    with (
        urllib.request.urlopen(url, timeout=60) as response,
        destination.open("wb") as out,
        tqdm(
            total=int(response.headers.get("Content-Length") or 0) or None,
            unit="B",
            unit_scale=True,
            desc=f"downloading {desc}",
            disable=not show_progress,
        ) as bar,
    ):
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            bar.update(len(chunk))


def _maybe_cached(
    root: Path, use_cache: bool, source: str, files: list[Path], build: Callable[[], Dataset]
) -> Dataset:
    if not use_cache:
        return build()
    return ParsedDatasetCache(root).load_or_build(source, files, build)


def _files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file())


def _header(path: Path, sep: str) -> list[str]:
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq  # only needed here; load_table imports it through pandas

        try:
            return list(pq.read_schema(path).names)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read as Parquet: {exc}", path=path) from None
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            first = next(csv.reader(handle, delimiter=sep), [])
    except UnicodeDecodeError:
        raise DataError("cannot decode the header line as utf-8", path=path, line=1) from None
    except OSError as exc:
        raise DataError(f"cannot read file: {exc}", path=path) from None
    return [c.strip().removeprefix("\ufeff") for c in first]
