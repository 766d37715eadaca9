"""A direct answer to the commonest request, ``GET /v1/users/{id}/recommendations``.

Under load, FastAPI's per-request work (routing, dependency resolution, parameter
validation, the exception middleware) costs about as much CPU in the event loop as the
model's share of a batch. :class:`UserRecommendationsFastPath` is an ASGI middleware that
recognises the plain form of that request and answers it itself, with the same checks and
the same bytes:

* path ``/v1/users/<id>/recommendations`` with an id FastAPI would accept (no ``/``, 1 to
  ``ID_CHARS`` characters, no control character) and no ``root_path``;
* a query string with at most ``k`` (digits, 1 to ``MAX_K``) and ``diversity`` (a plain
  decimal in [0, 1]), each at most once;
* one ``Authorization: Bearer <key>`` header whose key is active and grants ``read``.

Anything else (other parameters such as ``explain``, a value out of range, a missing or
refused key, any other route) goes on to FastAPI unchanged, which answers it exactly as
before, error messages included. The answer is :func:`recommendations_body`, the same
function the FastAPI route uses; errors from the service map to the statuses of
:mod:`lmrec.service.http_errors`. The route template is put in the ASGI scope, so
:class:`~lmrec.service.metrics.MetricsMiddleware` counts these requests under it.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from lmrec.errors import LmrecError
from lmrec.service.auth import KeyCache, grants
from lmrec.service.http_errors import error_body, error_status
from lmrec.service.runtime import RecommendationService
from lmrec.service.schemas import ID_PATTERN, MAX_K
from lmrec.service.store import ID_CHARS
from lmrec.service.user_batch import UserQuery

log = logging.getLogger(__name__)

ROUTE = "/v1/users/{user_id}/recommendations"
_PREFIX = "/v1/users/"
_SUFFIX = "/recommendations"
_ID = re.compile(ID_PATTERN.removeprefix("^").removesuffix("$"))
_K = re.compile(r"[0-9]{1,3}")
_DIVERSITY = re.compile(r"[01]?(?:\.[0-9]{1,17})?")
_JSON = [(b"content-type", b"application/json")]


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def recommendations_body(user_id: str | None, version: str, recs: list[Any]) -> bytes:
    """The JSON of a :class:`~lmrec.service.schemas.RecommendationList`.

    Written directly (the routes' ``response_model`` documents it): the fields are those of
    :meth:`lmrec.pipeline.PipelineRecommendation.to_dict`, with NaN and infinities as
    ``null``; building and validating pydantic models per item would cost more than the
    rest of the route's Python work.
    """
    items = [_finite(rec.to_dict()) for rec in recs]
    return _json({"user_id": user_id, "model_version": version, "items": items})


def _json(body: Any) -> bytes:
    """``body`` rendered as Starlette's ``JSONResponse`` renders it (compact UTF-8)."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def parse_query(query_string: bytes) -> tuple[int, float | None] | None:
    """``(k, diversity)`` of a plain query string, or ``None`` when FastAPI should judge it."""
    k, diversity = 10, None
    seen: set[str] = set()
    try:
        pairs = parse_qsl(query_string.decode("ascii"), keep_blank_values=True)
    except UnicodeDecodeError:
        return None
    for name, value in pairs:
        if name in seen:
            return None
        seen.add(name)
        if name == "k" and _K.fullmatch(value):
            k = int(value)
            if not 1 <= k <= MAX_K:
                return None
        elif name == "diversity" and value not in ("", ".") and _DIVERSITY.fullmatch(value):
            diversity = float(value)
            if not 0.0 <= diversity <= 1.0:
                return None
        else:
            return None
    return k, diversity


def user_of_path(path: str) -> str | None:
    """The user id of ``/v1/users/<id>/recommendations``, or ``None``."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    user_id = path[len(_PREFIX) : len(path) - len(_SUFFIX)]
    if not 1 <= len(user_id) <= ID_CHARS or "/" in user_id or not _ID.fullmatch(user_id):
        return None
    return user_id


def bearer_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key of the one ``Authorization: Bearer <key>`` header, or ``None``."""
    found = None
    for name, value in headers:
        if name == b"authorization":
            if found is not None:
                return None
            found = value
    if found is None:
        return None
    scheme, _, key = found.partition(b" ")
    if scheme.lower() != b"bearer" or not key:
        return None
    return key.decode("latin-1")  # as Starlette decodes headers (every byte decodes)


class UserRecommendationsFastPath:
    """ASGI middleware answering plain user-recommendation requests without FastAPI.

    Args:
        app: The FastAPI app (everything else goes there).
        service: The service whose request queue answers.
        keys: The app's key cache (the same keys and revocations as its routes).
        route: The FastAPI route of ``ROUTE``, put in the scope for the metrics.
    """

    def __init__(
        self, app: ASGIApp, service: RecommendationService, keys: KeyCache, route: Any
    ) -> None:
        self.app = app
        self.service = service
        self.keys = keys
        self.route = route

    def _query(self, scope: Scope) -> UserQuery | None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return None
        user_id = user_of_path(scope["path"])
        if user_id is None:
            return None
        parsed = parse_query(scope.get("query_string", b""))
        if parsed is None:
            return None
        key = bearer_key(scope.get("headers", []))
        if key is None:
            return None
        record = self.keys.verify(key)
        if record is None or not grants(record.scope, "read"):
            return None  # FastAPI answers 401 / 403 with its messages
        return UserQuery(user_id, parsed[0], parsed[1], None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = self._query(scope)
        if query is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        try:
            answer = await self.service.queue.submit(query)
            status = 200
            body = recommendations_body(query.user_id, answer.model_version, answer.items)
        except LmrecError as e:
            status = error_status(e)
            body = _json(error_body(str(e)))
        except Exception as e:
            log.error("unexpected error in GET %s", ROUTE, exc_info=e)
            status = 500
            body = _json(error_body("internal error"))
        headers = [*_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
