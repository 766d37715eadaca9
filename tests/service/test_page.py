"""The web page at ``/``, end to end: headless Chromium (the Debian ``chromium``, driven by
Playwright) against a real uvicorn server on the tiny text_mean run.

Tiny data (see tests/conftest.py): even users watch Action items 1-30, odd users Love items
31-60. ``.ci/run`` installs chromium and sets ``LMREC_REQUIRE_BROWSER=1``, so there a missing
browser fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from lmrec.service import RecommendationService, Store, create_app, create_key

CHROMIUM = Path(os.environ.get("LMREC_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_ENV = "LMREC_REQUIRE_BROWSER"
WAIT_MS = 30_000


def _browser_or_skip() -> None:
    why = ""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        why = "playwright is not installed (dev extra)"
    if not why and not CHROMIUM.exists():
        why = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if why:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but {why}")
        pytest.skip(why)


@pytest.fixture
def server(text_run: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real uvicorn server (in a thread) over SQLite; its base URL and a read key."""
    store = Store(f"sqlite:///{tmp_path / 'service.db'}")
    service = RecommendationService(store, text_run)
    key = create_key(store, "read").key
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        create_app(service), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", key
    server.should_exit = True
    thread.join(timeout=10)


def test_page_and_files_need_no_key_and_hold_none(server: tuple[str, str]) -> None:
    base, key = server
    page = httpx.get(f"{base}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert key not in page.text and "lmrec_" in page.text  # only the key format, as a hint
    script = httpx.get(f"{base}/static/app.js")
    assert script.status_code == 200 and "sessionStorage" in script.text
    assert httpx.get(f"{base}/static/style.css").status_code == 200
    assert httpx.get(f"{base}/static/nope.js").status_code == 404
    assert "/" not in httpx.get(f"{base}/openapi.json").json()["paths"]


def test_page_recommends_for_a_user_and_for_interests(server: tuple[str, str]) -> None:
    _browser_or_skip()
    from playwright.sync_api import Page, expect, sync_playwright

    base, key = server

    def answered(page: Page, mode: str, diversity: str) -> list[str]:
        results = page.locator("#results")
        expect(results).to_have_attribute("data-state", "done", timeout=WAIT_MS)
        expect(results).to_have_attribute("data-mode", mode, timeout=WAIT_MS)
        expect(results).to_have_attribute("data-diversity", diversity, timeout=WAIT_MS)
        return [
            str(x)
            for x in page.locator("#results li").evaluate_all("e => e.map(x => x.dataset.itemId)")
        ]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base)
            expect(page.locator("h1")).to_have_text("lmrec")

            # without a key the page asks for one and sends nothing
            page.fill("#user-id", "2")
            page.click("#recommend")
            expect(page.locator("#status")).to_have_text("Enter an API key first.")

            page.fill("#api-key", key)
            page.click("#key-form button[type=submit]")
            # the public part only: lmrec_<key id>_ (the secret may itself contain "_")
            public = "_".join(key.split("_")[:2])
            expect(page.locator("#key-state")).to_contain_text(public + "_…")
            assert page.input_value("#api-key") == ""  # the field is cleared
            assert page.evaluate("sessionStorage.getItem('lmrec.apiKey')") == key

            # a user: ten Action items with titles and explanations
            page.click("#recommend")
            plain = answered(page, "user", "0.00")
            assert len(plain) == 10
            titles = page.locator("#results .title").all_inner_texts()
            assert sum(t.startswith("Action Film") for t in titles) >= 8
            assert page.locator("#results .why").count() == 10
            expect(page.locator("#model")).to_contain_text("model text-")

            # the slider re-queries, and the list changes
            page.locator("#diversity").fill("1")
            expect(page.locator("#diversity-value")).to_have_text("1.00")
            spread = answered(page, "user", "1.00")
            assert len(spread) == 10 and spread != plain

            # typed interests
            page.check("input[name=mode][value=text]")
            expect(page.locator("#user-field")).to_be_hidden()
            page.fill("#interests", "romance and love")
            page.click("#recommend")
            diverse_text = answered(page, "text", "1.00")
            page.locator("#diversity").fill("0")
            focused = answered(page, "text", "0.00")
            assert len(focused) == 10 and focused != diverse_text
            titles = page.locator("#results .title").all_inner_texts()
            assert sum(t.startswith("Love Film") for t in titles) >= 8

            # an unknown user: the server's message
            page.check("input[name=mode][value=user]")
            page.fill("#user-id", "nobody")
            page.click("#recommend")
            expect(page.locator("#status")).to_contain_text("unknown user id 'nobody'")
            expect(page.locator("#results li")).to_have_count(0)

            # a new key re-runs the last query; a refused key is forgotten
            page.click("#forget-key")
            assert page.evaluate("sessionStorage.getItem('lmrec.apiKey')") is None
            page.fill("#api-key", "lmrec_000000000000_wrong")
            page.click("#key-form button[type=submit]")
            expect(page.locator("#status")).to_contain_text("The key was refused")
            assert page.evaluate("sessionStorage.getItem('lmrec.apiKey')") is None
            assert not errors
        finally:
            browser.close()
