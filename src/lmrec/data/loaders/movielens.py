"""MovieLens in its original GroupLens formats: ML-100K (``u.*``) and ML-1M/ML-10M (``*.dat``).

Items get a ``title``, a ``genres`` string (``"Action, Sci-Fi"``) and ``categories`` (the same
genres as a tuple); the text fields are ``("title", "genres")``. The catch-all genres
``unknown`` (ML-100K) and ``(no genres listed)`` (ML-10M) are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lmrec.data.loaders.delimited import Field, ParsedTable, read_delimited
from lmrec.data.schema import CATEGORIES, ITEM, RATING, TIME, USER, Dataset
from lmrec.errors import DataError

#: Genre names of ML-100K in flag order, used when ``u.genre`` is absent.
ML100K_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

#: Occupation codes of ML-1M ``users.dat``, as listed in its README.
ML1M_OCCUPATIONS: tuple[str, ...] = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)

MOVIELENS_TEXT_FIELDS: tuple[str, ...] = ("title", "genres")
_DROPPED_GENRES = frozenset({"unknown", "(no genres listed)"})
_RATING_FIELDS = (Field(USER), Field(ITEM), Field(RATING, "float"), Field(TIME, "int"))


def load_movielens_100k(directory: str | Path, *, name: str | None = None) -> Dataset:
    """Load MovieLens-100K from its original files.

    Reads ``u.data`` (tab separated: user, item, rating, unix time), ``u.item``
    (``|``-separated, ISO-8859-1: id, title, release date, video release date, IMDb URL and
    one 0/1 flag per genre), ``u.genre`` when present (else the standard 19 genre names) and
    ``u.user`` when present (id, age, gender, occupation, zip code).

    Args:
        directory: The folder holding the files.
        name: Dataset name; defaults to the folder name.

    Raises:
        DataError: A file is missing or malformed; the error names the file, line and value.
    """
    directory = Path(directory)
    _require_file(directory, "u.data")
    genre_file = directory / "u.genre"
    genres = _read_genre_names(genre_file) if genre_file.exists() else ML100K_GENRES
    items = _read_100k_items(directory / "u.item", genres)
    ratings = read_delimited(directory / "u.data", _RATING_FIELDS, sep="\t")
    interactions = _interactions(ratings, items[ITEM], "u.item")
    users = _read_100k_users(directory / "u.user") if (directory / "u.user").exists() else None
    return Dataset(
        name=name or directory.name,
        interactions=interactions,
        items=items,
        users=users,
        text_fields=MOVIELENS_TEXT_FIELDS,
    )


def load_movielens_dat(directory: str | Path, *, name: str | None = None) -> Dataset:
    """Load MovieLens-1M or -10M from their ``::``-separated ``.dat`` files.

    Reads ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``), ``movies.dat``
    (``MovieID::Title::Genres`` with ``|``-separated genres; UTF-8, else ISO-8859-1 as in
    ML-1M) and, when present, ``users.dat`` (ML-1M: ``UserID::Gender::Age::Occupation::Zip``;
    occupation codes become their names).

    Args:
        directory: The folder holding the files.
        name: Dataset name; defaults to the folder name.

    Raises:
        DataError: A file is missing or malformed; the error names the file, line and value.
    """
    directory = Path(directory)
    _require_file(directory, "ratings.dat")
    movies = read_delimited(
        directory / "movies.dat",
        (Field(ITEM), Field("title"), Field("genre_list")),
        sep="::",
        encodings=("utf-8", "latin-1"),
    )
    movies.require_nonempty(ITEM, "movie id")
    movies.require_unique(ITEM, "movie id")
    categories = [
        tuple(g for g in raw.split("|") if g and g not in _DROPPED_GENRES)
        for raw in movies.frame["genre_list"].astype(str)
    ]
    items = _items_frame(movies.frame[ITEM], movies.frame["title"], None, categories)
    ratings = read_delimited(directory / "ratings.dat", _RATING_FIELDS, sep="::")
    interactions = _interactions(ratings, items[ITEM], "movies.dat")
    users = _read_dat_users(directory / "users.dat") if (directory / "users.dat").exists() else None
    return Dataset(
        name=name or directory.name,
        interactions=interactions,
        items=items,
        users=users,
        text_fields=MOVIELENS_TEXT_FIELDS,
    )


def _require_file(directory: Path, filename: str) -> None:
    if not directory.is_dir():
        raise DataError("no such directory", path=directory)
    if not (directory / filename).is_file():
        raise DataError(f"{filename} not found in this directory", path=directory)


def _read_genre_names(path: Path) -> tuple[str, ...]:
    table = read_delimited(path, (Field("name"), Field("index", "int")), sep="|")
    indices = table.frame["index"].to_numpy()
    # n distinct indices all in 0..n-1 are exactly a permutation of them.
    bad = (indices < 0) | (indices >= len(indices)) | pd.Series(indices).duplicated().to_numpy()
    row = table.first_bad(bad)
    if row is not None:
        raise table.error(
            f"genre index {indices[row]} repeats or is outside 0..{len(indices) - 1}", row, "index"
        )
    names = table.frame["name"].astype(str).to_numpy()[np.argsort(indices)]
    return tuple(str(n) for n in names)


def _read_100k_items(path: Path, genres: Sequence[str]) -> pd.DataFrame:
    flags = [Field(f"genre_{j}", "int") for j in range(len(genres))]
    head = (Field(ITEM), Field("title"), Field("release_date"), Field("video_release_date"))
    table = read_delimited(
        path, (*head, Field("imdb_url"), *flags), sep="|", encodings=("latin-1",)
    )
    table.require_nonempty(ITEM, "item id")
    table.require_unique(ITEM, "item id")
    matrix = table.frame[[f.name for f in flags]].to_numpy()
    bad = (matrix != 0) & (matrix != 1)
    row = table.first_bad(bad.any(axis=1))
    if row is not None:
        j = int(np.flatnonzero(bad[row])[0])
        raise table.error(
            f"genre flag for {genres[j]!r} must be 0 or 1, got {matrix[row, j]}",
            row,
            flags[j].name,
        )
    keep = [j for j, g in enumerate(genres) if g not in _DROPPED_GENRES]
    categories = [tuple(genres[j] for j in keep if flag_row[j]) for flag_row in matrix]
    return _items_frame(
        table.frame[ITEM], table.frame["title"], table.frame["release_date"], categories
    )


def _items_frame(
    ids: pd.Series,
    titles: pd.Series,
    release_dates: pd.Series | None,
    categories: list[tuple[str, ...]],
) -> pd.DataFrame:
    columns: dict[str, object] = {
        ITEM: ids.astype(str).to_numpy(),
        "title": titles.astype(str).str.strip().to_numpy(),
    }
    if release_dates is not None:
        columns["release_date"] = release_dates.astype(str).to_numpy()
    columns["genres"] = [", ".join(c) for c in categories]
    columns[CATEGORIES] = pd.Series(categories, dtype=object).to_numpy()
    return pd.DataFrame(columns)


def _interactions(ratings: ParsedTable, item_ids: pd.Series, items_file: str) -> pd.DataFrame:
    ratings.require_nonempty(USER, "user id")
    ratings.require_nonempty(ITEM, "item id")
    ratings.require_known(ITEM, pd.Index(item_ids), "item id", items_file)
    frame = ratings.frame
    return pd.DataFrame(
        {
            USER: frame[USER].astype(str),
            ITEM: frame[ITEM].astype(str),
            TIME: frame[TIME].to_numpy(dtype=np.int64),
            RATING: frame[RATING].to_numpy(dtype=np.float64),
        }
    )


def _read_100k_users(path: Path) -> pd.DataFrame:
    fields = (Field(USER), Field("age", "int"), Field("gender"), Field("occupation"))
    table = read_delimited(path, (*fields, Field("zip_code")), sep="|", encodings=("latin-1",))
    table.require_nonempty(USER, "user id")
    table.require_unique(USER, "user id")
    return table.frame.reset_index(drop=True)


def _read_dat_users(path: Path) -> pd.DataFrame:
    fields = (Field(USER), Field("gender"), Field("age", "int"), Field("occupation", "int"))
    table = read_delimited(
        path, (*fields, Field("zip_code")), sep="::", encodings=("utf-8", "latin-1")
    )
    table.require_nonempty(USER, "user id")
    table.require_unique(USER, "user id")
    codes = table.frame["occupation"].to_numpy()
    names = [ML1M_OCCUPATIONS[c] if 0 <= c < len(ML1M_OCCUPATIONS) else str(c) for c in codes]
    frame = table.frame.copy()
    frame["occupation"] = names
    return frame.reset_index(drop=True)
