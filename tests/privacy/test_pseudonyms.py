"""Keyed pseudonyms: stable under one key, different across keys, keys from files only."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from lmrec.cli.main import main
from lmrec.data import Dataset
from lmrec.errors import ConfigError
from lmrec.privacy import (
    KEY_FILE_ENV,
    PSEUDONYM_HEX_CHARS,
    PrivacyConfig,
    Pseudonymizer,
    apply_privacy,
    pseudonymize_dataset,
    read_key_file,
    write_key_file,
)

RAW = ["alice@example.com-user-7", "bob.smith+x@example.org-user-12", "7", "ünïcode-ユーザー"]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return write_key_file(tmp_path / "keys" / "pseudonym.key")


def test_key_file_is_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "new" / "k.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(read_key_file(path)) == 32
    before = path.read_text()
    with pytest.raises(ConfigError, match="never overwritten"):
        write_key_file(path)
    assert path.read_text() == before


def test_same_id_same_pseudonym_other_key_other_pseudonym(tmp_path: Path, key_file: Path) -> None:
    a = Pseudonymizer.from_key_file(key_file)
    again = Pseudonymizer.from_key_file(key_file)
    other = Pseudonymizer.from_key_file(write_key_file(tmp_path / "other.key"))
    for raw in RAW:
        p = a.pseudonym(raw)
        assert p == again.pseudonym(raw)
        assert p != other.pseudonym(raw)
        assert len(p) == PSEUDONYM_HEX_CHARS and int(p, 16) >= 0
        assert raw not in p or len(raw) < 3
    assert len({a.pseudonym(r) for r in RAW}) == len(RAW)
    assert repr(a) == "Pseudonymizer(key=<hidden>)"


def test_pseudonym_is_hmac_sha256_of_the_domain_and_the_id(key_file: Path) -> None:
    import hashlib
    import hmac

    key = bytes.fromhex(key_file.read_text().strip())
    expected = hmac.new(key, b"lmrec/user\x00" + RAW[0].encode(), hashlib.sha256).hexdigest()
    assert Pseudonymizer(key).pseudonym(RAW[0]) == expected[:32]


def test_missing_key_says_how_to_create_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(ConfigError, match=f"lmrec privacy keygen {missing}"):
        Pseudonymizer.from_key_file(missing)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    with pytest.raises(ConfigError, match="lmrec privacy keygen") as info:
        Pseudonymizer.from_config(PrivacyConfig(pseudonymize=True))
    assert KEY_FILE_ENV in str(info.value)


def test_key_from_env_and_created_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env.key"
    monkeypatch.setenv(KEY_FILE_ENV, str(path))
    with pytest.raises(ConfigError, match="does not exist"):
        Pseudonymizer.from_env()
    created = Pseudonymizer.from_config(PrivacyConfig(pseudonymize=True, create_key=True))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Pseudonymizer.from_env().pseudonym("u") == created.pseudonym("u")


@pytest.mark.parametrize(("text", "needle"), [("not hex!", "hex key"), ("abcd", "at least 16")])
def test_bad_key_files(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        read_key_file(path)


def test_readable_key_file_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_key_file(tmp_path / "k.key")
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="lmrec.privacy.pseudonyms"):
        read_key_file(path)
    assert "chmod 600" in caplog.text
    assert path.read_text().strip() not in caplog.text


def _dataset() -> Dataset:
    interactions = pd.DataFrame(
        {
            "user_id": [RAW[0], RAW[0], RAW[1], RAW[2]],
            "item_id": ["i1", "i2", "i1", "i2"],
            "timestamp": [1, 2, 3, 4],
        }
    )
    items = pd.DataFrame({"item_id": ["i1", "i2"], "title": ["A", "B"], "categories": [(), ()]})
    users = pd.DataFrame({"user_id": [RAW[0], RAW[3]], "age": [30, 40]})
    return Dataset("t", interactions, items, users)


def test_pseudonymize_dataset_replaces_every_user_id(key_file: Path) -> None:
    p = Pseudonymizer.from_key_file(key_file)
    out = pseudonymize_dataset(_dataset(), p)
    expected = [p.pseudonym(r) for r in (RAW[0], RAW[0], RAW[1], RAW[2])]
    assert list(out.interactions["user_id"]) == expected
    assert out.users is not None
    assert list(out.users["user_id"]) == [p.pseudonym(RAW[0]), p.pseudonym(RAW[3])]
    assert list(out.users["age"]) == [30, 40]
    assert out.user_map().ids.tolist() == sorted({p.pseudonym(r) for r in RAW})


def test_apply_privacy_does_nothing_by_default() -> None:
    data = _dataset()
    assert apply_privacy(data, PrivacyConfig()) is data


def test_cli_keygen_and_pseudonym(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.key"
    assert main(["privacy", "keygen", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in capsys.readouterr().out
    assert main(["privacy", "pseudonym", RAW[0], RAW[1], "--key-file", str(path)]) == 0
    lines = capsys.readouterr().out.split()
    p = Pseudonymizer.from_key_file(path)
    assert lines == [p.pseudonym(RAW[0]), p.pseudonym(RAW[1])]
    assert main(["privacy", "keygen", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "never overwritten" in err
