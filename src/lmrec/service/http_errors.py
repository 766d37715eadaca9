"""Bad input and faults at the HTTP boundary: every error is JSON with a clear message.

* Malformed JSON, wrong types, values out of range → 422 naming the field
  (``{"detail": "query.k: Input should be less than or equal to 100", "errors": [...]}``).
* Unknown user or item → 404; invalid values the library rejects → 422.
* A body above :data:`~lmrec.service.schemas.MAX_BODY_BYTES` or a batch above
  :data:`~lmrec.service.runtime.MAX_EVENTS` → 413.
* Anything unexpected → 500 with a generic message; the traceback goes to the log only.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmrec.errors import LmrecError, ModelFileError, UnknownIdError
from lmrec.service.runtime import PayloadTooLargeError

log = logging.getLogger(__name__)


def _field(loc: Any) -> str:
    return ".".join(str(part) for part in loc)


def error_body(detail: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"detail": detail, "errors": errors}


def _clean(value: Any) -> Any:
    """A JSON-safe copy of a validation error's input (it may hold bytes or odd floats)."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return repr(value)[:200]


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field(e.get("loc", ())), "message": str(e.get("msg", "")), "type": e.get("type")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    detail = f"{first['field']}: {first['message']}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return JSONResponse(status_code=422, content=_clean(error_body(detail, errors)))


def error_status(exc: LmrecError) -> int:
    """The HTTP status of a library error: 404 unknown id, 413 too large, 409 run not
    loadable, 422 any other invalid value."""
    if isinstance(exc, UnknownIdError):
        return 404
    if isinstance(exc, PayloadTooLargeError):
        return 413
    if isinstance(exc, ModelFileError):
        return 409
    return 422


async def lmrec_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LmrecError)
    return JSONResponse(status_code=error_status(exc), content=error_body(str(exc)))


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:  # FastAPI's answer to a body it cannot decode (not UTF-8, ...)
        detail = f"body: {exc.detail}"
        errors = [{"field": "body", "message": str(exc.detail), "type": "body_unreadable"}]
        return JSONResponse(status_code=422, content=error_body(detail, errors))
    return JSONResponse(
        status_code=exc.status_code,
        content=error_body(str(exc.detail)),
        headers=getattr(exc, "headers", None),
    )


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    route = getattr(request.scope.get("route"), "path", "<unmatched>")
    log.error("unexpected error in %s %s", request.method, route, exc_info=exc)
    return JSONResponse(status_code=500, content=error_body("internal error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(LmrecError, lmrec_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


class BodySizeLimit:
    """Answers 413 to a request body above ``max_bytes``, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, send: Send) -> None:
        body = json.dumps(error_body(f"body: request body above {self.max_bytes} bytes")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._too_large(send)
                    return
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # an HTTPException passes FastAPI's body parsing and reaches http_error
                    raise HTTPException(413, f"body: request body above {self.max_bytes} bytes")
            return message

        await self.app(scope, counted_receive, send)
