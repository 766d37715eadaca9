"""``lmrec keys`` and ``lmrec serve``'s failures (the server itself: tests/service)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs the serve extra")

from lmrec.cli.main import main
from lmrec.service import Store, verify_key


def test_keys_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'service.db'}"
    assert main(["keys", "create", "--scope", "write", "--name", "ingest", "--db", db]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    key_id = key.split("_")[1]
    assert key.startswith("lmrec_") and f"key id {key_id}" in err and "not shown again" in err
    store = Store(db)
    record = verify_key(store, key)
    assert record is not None and record.scope == "write"

    assert main(["keys", "list", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and "active" in listing and "ingest" in listing
    assert key not in listing

    assert main(["keys", "revoke", key_id, "--db", db]) == 0
    assert verify_key(store, key) is None
    capsys.readouterr()
    assert main(["keys", "revoke", key_id, "--db", db]) == 2
    assert "no active API key" in capsys.readouterr().err
    store.close()


def test_database_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LMREC_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert main(["keys", "create", "--scope", "read"]) == 0
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--db", "mysql://x/y"], "sqlite"),
        ([], "does not exist"),
    ],
)
def test_serve_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 's.db'}"]
    code = main(["serve", str(tmp_path / "no-run"), *(args or db)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err
    assert err.startswith("lmrec: error:")
