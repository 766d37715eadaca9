"""MovieLens loaders on small files written per test: columns, text, encodings and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmrec.data.loaders.movielens import ML100K_GENRES, load_movielens_100k, load_movielens_dat
from lmrec.data.schema import CATEGORIES, ITEM, RATING, TIME, USER
from lmrec.errors import DataError


def flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in ML100K_GENRES)


def write_100k(
    directory: Path,
    *,
    data: str | None = None,
    item_lines: list[str] | None = None,
    genre: bool = True,
    user: str | None = "1|24|M|technician|85711\n2|53|F|other|94043\n",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = "1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n"
    (directory / "u.data").write_text(data)
    if item_lines is None:
        item_lines = [
            f"1|Toy Story (1995)|01-Jan-1995||http://x|{flags('Animation', 'Comedy')}",
            f"2|Café Society (1995)|01-Jan-1995||http://y|{flags('unknown', 'Drama')}",
            f"3|Alien (1979)|01-Jan-1979||http://z|{flags('Horror', 'Sci-Fi')}",
        ]
    (directory / "u.item").write_bytes(("\n".join(item_lines) + "\n").encode("latin-1"))
    if genre:
        lines = [f"{g}|{j}" for j, g in enumerate(ML100K_GENRES)]
        (directory / "u.genre").write_text("\n".join(lines) + "\n\n")
    if user is not None:
        (directory / "u.user").write_text(user)
    return directory


def test_100k_columns_text_and_latin1(tmp_path: Path) -> None:
    ds = load_movielens_100k(write_100k(tmp_path / "ml"))
    assert ds.name == "ml"
    assert list(ds.interactions.columns) == [USER, ITEM, TIME, RATING]
    assert ds.interactions[RATING].dtype == "float64"
    assert ds.interactions[TIME].tolist() == [881250949, 881250950, 881250951]
    items = ds.items.set_index(ITEM)
    assert items.loc["2", "title"] == "Café Society (1995)"
    assert items.loc["2", CATEGORIES] == ("Drama",)  # "unknown" dropped
    assert items.loc["1", "genres"] == "Animation, Comedy"
    assert items.loc["3", "release_date"] == "01-Jan-1979"
    assert ds.text_fields == ("title", "genres")
    assert ds.item_text("3") == "title: Alien (1979); genres: Horror, Sci-Fi"
    assert ds.users is not None and ds.users.set_index(USER).loc["2", "occupation"] == "other"
    assert ds.users["age"].tolist() == [24, 53]


def test_100k_without_genre_and_user_files(tmp_path: Path) -> None:
    ds = load_movielens_100k(write_100k(tmp_path / "ml", genre=False, user=None))
    assert ds.users is None
    assert ds.items.set_index(ITEM).loc["1", CATEGORIES] == ("Animation", "Comedy")


def test_100k_custom_genre_file(tmp_path: Path) -> None:
    directory = write_100k(
        tmp_path / "ml", genre=False, item_lines=["1|A|d||u|0|1", "2|B|d||u|1|1", "3|C|d||u|0|0"]
    )
    (directory / "u.genre").write_text("Drama|1\nunknown|0\n")
    items = load_movielens_100k(directory).items.set_index(ITEM)
    assert items.loc["1", CATEGORIES] == ("Drama",)
    assert items.loc["2", CATEGORIES] == ("Drama",)
    assert items.loc["3", CATEGORIES] == ()


@pytest.mark.parametrize(
    ("data", "file", "line", "column", "needle"),
    [
        ("1\t1\t5\t1\n" * 6 + "1\t2\t5\tabc\n", "u.data", 7, TIME, "'abc'"),
        ("1\t1\t5\t1\n1\t99\t4\t2\n", "u.data", 2, ITEM, "unknown item id '99'"),
        ("1\t1\t5\t1\n1\t2\t4\n", "u.data", 2, None, "expected 4 fields"),
        ("1\t1\tgood\t1\n", "u.data", 1, RATING, "'good'"),
        ("\t1\t5\t1\n", "u.data", 1, USER, "empty user id"),
    ],
)
def test_100k_rating_errors(
    tmp_path: Path, data: str, file: str, line: int, column: str | None, needle: str
) -> None:
    directory = write_100k(tmp_path / "ml", data=data)
    with pytest.raises(DataError) as info:
        load_movielens_100k(directory)
    err = info.value
    assert err.path == directory / file
    assert (err.line, err.column) == (line, column)
    assert needle in str(err)


def test_100k_duplicate_item_and_bad_flag(tmp_path: Path) -> None:
    lines = [f"1|A|d||u|{flags()}", f"2|B|d||u|{flags()}", f"1|C|d||u|{flags()}"]
    with pytest.raises(DataError, match=r"u\.item:3.*duplicate item id '1' \(first on line 1\)"):
        load_movielens_100k(write_100k(tmp_path / "a", item_lines=lines))
    lines = [f"1|A|d||u|{flags()}", "2|B|d||u|" + "|".join(["0"] * 18 + ["2"])]
    with pytest.raises(DataError, match=r"u\.item:2.*'Western' must be 0 or 1, got 2"):
        load_movielens_100k(write_100k(tmp_path / "b", item_lines=lines))


def test_100k_encoding_error_and_empty_file(tmp_path: Path) -> None:
    directory = write_100k(tmp_path / "ml")
    (directory / "u.data").write_bytes(b"1\t1\t5\t1\n1\t2\t5\t\xe9\n")
    with pytest.raises(DataError, match=r"u\.data:2: cannot decode") as info:
        load_movielens_100k(directory)
    assert info.value.line == 2
    (directory / "u.data").write_text("")
    with pytest.raises(DataError, match=r"u\.data: file is empty"):
        load_movielens_100k(directory)


def test_100k_missing_directory_or_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such directory"):
        load_movielens_100k(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"u\.data not found"):
        load_movielens_100k(tmp_path / "empty")


def write_dat(directory: Path, *, movies: bytes | None = None, ratings: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if ratings is None:
        ratings = "1::10::5::978300760\n1::20::3.5::978302109\n2::10::4::978301968\n"
    (directory / "ratings.dat").write_text(ratings)
    if movies is None:
        movies = (
            "10::Star Wars: Episode IV (1977)::Action|Sci-Fi\n"
            "20::Amélie (2001)::Comedy|Romance\n"
            "30::Nothing (2000)::(no genres listed)\n"
        ).encode("latin-1")
    (directory / "movies.dat").write_bytes(movies)
    return directory


def test_dat_loader_latin1_and_utf8(tmp_path: Path) -> None:
    ds = load_movielens_dat(write_dat(tmp_path / "ml-1m"))
    items = ds.items.set_index(ITEM)
    assert items.loc["20", "title"] == "Amélie (2001)"
    assert items.loc["10", "title"] == "Star Wars: Episode IV (1977)"
    assert items.loc["10", CATEGORIES] == ("Action", "Sci-Fi")
    assert items.loc["30", CATEGORIES] == ()
    assert ds.interactions[RATING].tolist() == [5.0, 3.5, 4.0]
    assert ds.users is None

    utf8 = "10::Amélie (2001)::Comedy\n20::Zoë (2010)::Drama\n".encode()
    ds = load_movielens_dat(write_dat(tmp_path / "ml-10m", movies=utf8))
    assert ds.items.set_index(ITEM).loc["20", "title"] == "Zoë (2010)"


def test_dat_users(tmp_path: Path) -> None:
    directory = write_dat(tmp_path / "ml-1m")
    (directory / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    users = load_movielens_dat(directory).users
    assert users is not None
    assert users["occupation"].tolist() == ["K-12 student", "self-employed"]
    assert users["age"].tolist() == [1, 56]


@pytest.mark.parametrize(
    ("ratings", "line", "needle"),
    [
        ("1::10::5::1\n1::10::5::1::9\n", 2, "expected 4 fields separated by '::', found 5"),
        ("1::10::5::1\n1::10::5::x\n", 2, "expected an integer, got 'x'"),
        ("1::10::5::1\n1::77::5::1\n", 2, "unknown item id '77', not in movies.dat"),
    ],
)
def test_dat_errors(tmp_path: Path, ratings: str, line: int, needle: str) -> None:
    directory = write_dat(tmp_path / "ml", ratings=ratings)
    with pytest.raises(DataError) as info:
        load_movielens_dat(directory)
    assert info.value.path == directory / "ratings.dat"
    assert info.value.line == line
    assert needle in str(info.value)


def test_dat_duplicate_movie(tmp_path: Path) -> None:
    movies = b"10::A::Drama\n10::B::Drama\n"
    with pytest.raises(DataError, match=r"movies\.dat:2.*duplicate movie id '10'"):
        load_movielens_dat(write_dat(tmp_path / "ml", movies=movies))
