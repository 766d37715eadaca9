"""End to end: with ``[privacy]`` on, no raw user id and no PII of the item texts reaches the
run directory (model, checkpoints, logs, catalog, result), the printed output or the logs."""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmrec.cli.main import main
from lmrec.experiment import read_catalog
from lmrec.models import load_model
from lmrec.privacy import Pseudonymizer, pseudonymizer_for_run, write_key_file

N_USERS, N_ITEMS = 24, 30


def raw_user(u: int) -> str:
    return f"alice{u}@example.com-user-{u}"


def item_pii(i: int) -> list[str]:
    return [f"seller{i}@shop.example.com", f"(415) 555-{1000 + i}"]


@pytest.fixture(scope="module")
def private_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("private")
    lines = ["user,item,ts"]
    for u in range(N_USERS):
        group = u % 2
        pool = range(1, N_ITEMS // 2 + 1) if group == 0 else range(N_ITEMS // 2 + 1, N_ITEMS + 1)
        lines += [
            f"{raw_user(u)},i{i},{1000 * t + u}" for t, i in enumerate(list(pool)[u % 3 :][:8])
        ]
    (root / "events.csv").write_text("\n".join(lines) + "\n")
    items = ["item_id,title,genre"]
    for i in range(1, N_ITEMS + 1):
        email, phone = item_pii(i)
        kind = "Action" if i <= N_ITEMS // 2 else "Romance"
        items.append(f'i{i},"{kind} film {i}, ask {email} or call {phone}",{kind}')
    (root / "items.csv").write_text("\n".join(items) + "\n")
    users = ["user_id,note"] + [f"{raw_user(u)},contact {raw_user(u)}" for u in range(N_USERS)]
    (root / "users.csv").write_text("\n".join(users) + "\n")
    return root


def write_config(path: Path, data: Path, runs: Path, model: str, privacy: str) -> Path:
    path.write_text(
        f"""
[data.table]
path = "{data / "events.csv"}"
user_col = "user"
item_col = "item"
time_col = "ts"
items_path = "{data / "items.csv"}"
categories_col = "genre"
users_path = "{data / "users.csv"}"

[model]
{model}

[run]
output_dir = "{runs}"
name = "p"
show_progress = false

[privacy]
{privacy}
"""
    )
    return path


def file_bytes(root: Path) -> Iterator[tuple[Path, bytes]]:
    """Every file under ``root``, and every member of the zip files (torch checkpoints)."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        yield path, data
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    yield path / name, z.read(name)


def leaks(root: Path, needles: list[str]) -> list[str]:
    found = []
    for path, data in file_bytes(root):
        for needle in needles:
            if needle.encode() in data:
                found.append(f"{needle} in {path.relative_to(root)}")
    return found


RAW_IDS = [raw_user(u) for u in range(N_USERS)]
PII = [p for i in range(1, N_ITEMS + 1) for p in item_pii(i)]
MODELS = {
    "sasrec": 'type = "sasrec"\ndim = 16\nmax_len = 10\n'
    "[model.trainer]\nepochs = 2\nbatch_size = 8",
    "text_mean": 'type = "text_mean"',
}


@pytest.mark.parametrize("model", list(MODELS))
def test_private_run_holds_no_raw_id_and_no_pii(
    private_data: Path,
    tmp_path: Path,
    model: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = write_key_file(tmp_path / "secret" / "pseudonym.key")
    privacy = f'pseudonymize = true\nkey_file = "{key}"\nscrub = true'
    cfg = write_config(tmp_path / "c.toml", private_data, tmp_path / "runs", MODELS[model], privacy)
    with caplog.at_level(logging.DEBUG):
        assert main(["train", "--config", str(cfg)]) == 0
        run = tmp_path / "runs" / "p"
        assert main(["evaluate", str(run), "--json", "--no-progress"]) == 0
    out = capsys.readouterr()
    names = {p.name for p in run.rglob("*")}
    assert {"model", "catalog.json", "result.json", "config.json"} <= names
    if model == "sasrec":  # a trained model: its per-epoch log and checkpoint are scanned too
        assert "train_log.jsonl" in names and any(n.endswith(".pt") for n in names), names
    assert leaks(run, RAW_IDS + PII) == []
    for text in (out.out, out.err, caplog.text):
        assert not [n for n in RAW_IDS + PII if n in text]
    assert key.read_text().strip() not in (run / "config.json").read_text()

    # the model knows every user by the pseudonym of their raw id: a user named by raw id
    # (e.g. to delete them) is found by recomputing it
    pseudonymizer = Pseudonymizer.from_key_file(key)
    fitted = load_model(run / "model")
    assert fitted.user_map is not None
    assert sorted(fitted.user_map.ids) == sorted(pseudonymizer.pseudonym(r) for r in RAW_IDS)
    for_run = pseudonymizer_for_run(run)
    assert for_run is not None and for_run.pseudonym(RAW_IDS[0]) == pseudonymizer.pseudonym(
        RAW_IDS[0]
    )
    # item text is scrubbed where it is stored
    titles = [r["title"] for r in read_catalog(run).values()]
    assert all("[EMAIL]" in t and "[PHONE]" in t for t in titles)
    if model == "text_mean":
        texts = json.loads((run / "model" / "item_texts.json").read_text())
        assert "title: Action film 1, ask [EMAIL] or call [PHONE]" in texts[0]

    # the CLI takes raw ids at the boundary
    assert main(["recommend", str(run), "--user", RAW_IDS[2], "-k", "3", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 3


def test_without_privacy_the_same_scan_finds_the_raw_ids(
    private_data: Path, tmp_path: Path
) -> None:
    # the control: proves that the scan above would see raw ids and PII if they were there
    cfg = write_config(tmp_path / "c.toml", private_data, tmp_path / "runs", 'type = "pop"', "")
    assert main(["train", "--config", str(cfg)]) == 0
    found = leaks(tmp_path / "runs" / "p", RAW_IDS + PII)
    assert any(RAW_IDS[0] in f for f in found)
    assert any(PII[0] in f for f in found)


def test_pseudonymize_without_a_key_is_one_clear_line(
    private_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("LMREC_PSEUDONYM_KEY_FILE", raising=False)
    cfg = write_config(
        tmp_path / "c.toml", private_data, tmp_path / "runs", 'type = "pop"', "pseudonymize = true"
    )
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lmrec privacy keygen" in err
