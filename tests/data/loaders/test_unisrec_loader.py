"""The UniSRec pre-split format: sequences rebuilt exactly, ids mapped, inconsistencies reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmrec.data.loaders.unisrec import load_unisrec
from lmrec.data.schema import ITEM, TIME, USER
from lmrec.data.splitting import leave_one_out_split
from lmrec.errors import DataError

HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
ASINS = ["B000A", "B000B", "B000C", "B000D", "B000E", "B000F"]
USERS = ["AUSER0", "AUSER1", "AUSER2"]


def rows(user: int, seq: list[int], cap: int) -> dict[str, list[str]]:
    """The rows UniSRec preprocessing writes for one sequence (train newest first)."""

    def row(t: int) -> str:
        return f"{user}\t{' '.join(map(str, seq[max(0, t - cap) : t]))}\t{seq[t]}"

    n = len(seq)
    return {
        "train": [row(t) for t in range(n - 3, 0, -1)],
        "valid": [row(n - 2)],
        "test": [row(n - 1)],
    }


def write_set(
    directory: Path,
    sequences: dict[int, list[int]],
    *,
    cap: int = 50,
    maps: bool = True,
    text: bool = True,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for user, seq in sequences.items():
        for part, lines in rows(user, seq, cap).items():
            parts[part].extend(lines)
    for part, lines in parts.items():
        (directory / f"Mini.{part}.inter").write_text(HEADER + "".join(f"{x}\n" for x in lines))
    if maps:
        (directory / "Mini.item2index").write_text(
            "".join(f"{a}\t{i}\n" for i, a in enumerate(ASINS))
        )
        (directory / "Mini.user2index").write_text(
            "".join(f"{u}\t{i}\n" for i, u in enumerate(USERS))
        )
    if text:
        lines = [f"{a}\tItem {a} title. Tools. Brand. " for a in ASINS[:5]]  # B000F has no text
        (directory / "Mini.text").write_text(
            "item_id:token\ttext:token_seq\n" + "\n".join(lines) + "\n"
        )
    return directory


SEQUENCES = {0: [0, 1, 2, 3, 4], 1: [2, 3, 1], 2: [4, 0, 1, 2, 5, 3, 0]}


def test_sequences_ids_and_text(tmp_path: Path) -> None:
    ds = load_unisrec(write_set(tmp_path, SEQUENCES))
    assert ds.name == "Mini"
    inter = ds.interactions
    got = {u: g[ITEM].tolist() for u, g in inter.groupby(USER, sort=False)}
    assert got == {USERS[u]: [ASINS[i] for i in seq] for u, seq in SEQUENCES.items()}
    assert inter.groupby(USER)[TIME].apply(list).to_dict()[USERS[2]] == list(range(7))
    assert ds.items[ITEM].tolist() == ASINS  # every item of item2index, in index order
    assert ds.text_fields == ("text",)
    assert ds.item_text("B000A") == "text: Item B000A title. Tools. Brand."
    assert ds.items.set_index(ITEM).loc["B000F", "text"] == ""


def test_leave_one_out_reproduces_valid_and_test(tmp_path: Path) -> None:
    ds = load_unisrec(write_set(tmp_path, SEQUENCES))
    split = leave_one_out_split(ds.interactions)
    for u, seq in SEQUENCES.items():
        assert split.test[split.test[USER] == USERS[u]][ITEM].tolist() == [ASINS[seq[-1]]]
        assert split.valid[split.valid[USER] == USERS[u]][ITEM].tolist() == [ASINS[seq[-2]]]


def test_truncated_histories_are_rebuilt_from_train_rows(tmp_path: Path) -> None:
    long = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]
    ds = load_unisrec(write_set(tmp_path, {0: long, 1: [1, 2, 3]}, cap=3))
    assert ds.interactions[ds.interactions[USER] == USERS[0]][ITEM].tolist() == [
        ASINS[i] for i in long
    ]


def test_without_index_files_indices_are_ids(tmp_path: Path) -> None:
    directory = write_set(tmp_path, SEQUENCES, maps=False, text=False)
    ds = load_unisrec(directory)
    assert ds.items[ITEM].tolist() == ["0", "1", "2", "3", "4", "5"]
    assert sorted(ds.interactions[USER].unique()) == ["0", "1", "2"]
    assert (ds.items["text"] == "").all()


def test_user_only_in_train(tmp_path: Path) -> None:
    directory = write_set(tmp_path, {0: [0, 1, 2, 3]})
    with (directory / "Mini.train.inter").open("a") as f:
        f.write("1\t3 4\t5\n1\t3\t4\n")
    ds = load_unisrec(directory)
    assert ds.interactions[ds.interactions[USER] == USERS[1]][ITEM].tolist() == [
        ASINS[3],
        ASINS[4],
        ASINS[5],
    ]


def test_valid_not_matching_test_is_reported(tmp_path: Path) -> None:
    directory = write_set(tmp_path, SEQUENCES)
    test_file = directory / "Mini.test.inter"
    lines = test_file.read_text().splitlines()
    lines[2] = "1\t2 4\t1"  # user 1: valid is "2 3 -> 1"... the history should end with 3
    test_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        load_unisrec(directory)
    err = info.value
    assert err.path == test_file and err.line == 3 and err.column == "item_id_list"
    assert "user '1'" in str(err) and "Mini.valid.inter line 3" in str(err)
    assert "should end with [2 3], got [2 4]" in str(err)


@pytest.mark.parametrize(
    ("file", "content", "line", "needle"),
    [
        ("Mini.test.inter", HEADER + "0\t0 1 9\t2\n", 2, "unknown item index '9'"),
        ("Mini.test.inter", HEADER + "7\t0 1\t2\n", 2, "unknown user index '7'"),
        ("Mini.valid.inter", HEADER + "0\t0 1 2\t3\n0\t0 1 2\t3\n", 3, "second valid row"),
        ("Mini.item2index", "B000A\t0\nB000B\t0\n", 2, "duplicate item index"),
        ("Mini.text", "item_id:token\ttext:token_seq\nZZZ\tx\n", 2, "unknown item id 'ZZZ'"),
        ("Mini.train.inter", "user_id:token\titem_id:token\n", 1, "missing required field"),
    ],
)
def test_file_errors(tmp_path: Path, file: str, content: str, line: int, needle: str) -> None:
    directory = write_set(tmp_path, {0: [0, 1, 2, 3, 4]})
    (directory / file).write_text(content)
    with pytest.raises(DataError) as info:
        load_unisrec(directory)
    assert info.value.path == directory / file
    assert info.value.line == line
    assert needle in str(info.value)


def test_missing_train_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no \*\.train\.inter"):
        load_unisrec(tmp_path)
