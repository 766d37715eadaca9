"""The web page at ``/``: static HTML, JavaScript and CSS from ``lmrec/service/static``.

The page and its files need no key; the API calls it makes do. A person types a ``read`` key
into the page, which keeps it in ``sessionStorage`` (that browser tab only) and sends it as
``Authorization: Bearer``; no key is ever written into the page or a URL. A strict
Content-Security-Policy allows only this origin's own scripts and styles, and the page shows
server text through ``textContent`` only, so an item title cannot run script.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def install_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/static/`` (no key, not in the schema)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=SECURITY_HEADERS)
