"""The HTTP API (FastAPI). Routes only parse, call :class:`RecommendationService`, and format.

Access: ``Authorization: Bearer <key>`` (``lmrec keys create``); ``read`` for recommendations
and similar items, ``write`` for events, items and user deletion, ``admin`` for reloads.
``/healthz``, ``/readyz``, ``/metrics``, the OpenAPI schema (``/openapi.json``, ``/docs``)
and the web page (``/``, :mod:`lmrec.service.page`) are open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from lmrec import __version__
from lmrec.service.auth import KeyCache, Scope, grants
from lmrec.service.fast_path import ROUTE, UserRecommendationsFastPath, recommendations_body
from lmrec.service.http_errors import BodySizeLimit, error_body, install_error_handlers
from lmrec.service.metrics import MetricsMiddleware, ServiceMetrics
from lmrec.service.page import install_page
from lmrec.service.runtime import MAX_EVENTS, RecommendationService
from lmrec.service.schemas import (
    ID_PATTERN,
    MAX_BODY_BYTES,
    MAX_K,
    DiversityMethod,
    ErrorResponse,
    EventBatch,
    Health,
    IngestResponse,
    ItemBody,
    ItemDeleted,
    ItemResponse,
    Readiness,
    RecommendationList,
    RecommendRequest,
    ReloadRequest,
    ReloadResponse,
    SimilarItem,
    SimilarItemList,
    UserDeleted,
)
from lmrec.service.store import ID_CHARS, StoredEvent
from lmrec.service.store import ApiKeyRecord as _Key
from lmrec.service.user_batch import UserQuery

_bearer = HTTPBearer(auto_error=False, description="An API key made by `lmrec keys create`.")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in [
        (401, "No valid API key."),
        (403, "The key's scope does not allow this."),
        (404, "Unknown user or item."),
        (413, "Request too large."),
        (422, "Invalid request; the message names the field."),
    ]
}

UserId = Annotated[str, Path(min_length=1, max_length=ID_CHARS, pattern=ID_PATTERN)]
ItemId = Annotated[str, Path(min_length=1, max_length=ID_CHARS, pattern=ID_PATTERN)]
K = Annotated[int, Query(ge=1, le=MAX_K, description="How many items.")]
Diversity = Annotated[
    float | None,
    Query(
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="0: plain; 1: most diverse. Omitted: the run's [diversity] setting.",
    ),
]


def create_app(service: RecommendationService) -> FastAPI:
    """The FastAPI app serving ``service``; closing the app disposes of the store's engine."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    app = FastAPI(
        title="lmrec",
        version=__version__,
        description="Recommendations from pretrained language models.",
        lifespan=lifespan,
    )
    metrics = ServiceMetrics(service)
    app.state.service = service
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)

    keys = KeyCache(service.store)

    def require(scope: Scope) -> Callable[..., Any]:
        async def check(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> _Key:
            challenge = {"WWW-Authenticate": "Bearer"}
            if credentials is None:
                raise HTTPException(
                    401, "missing API key: send Authorization: Bearer <key>", challenge
                )
            record = keys.verify(credentials.credentials)
            if record is None:
                raise HTTPException(401, "invalid or revoked API key", challenge)
            if not grants(record.scope, scope):
                raise HTTPException(403, f"a {record.scope!r} key cannot do this: needs {scope!r}")
            return record

        return check

    read = [Depends(require("read"))]
    write = [Depends(require("write"))]
    admin = [Depends(require("admin"))]
    install_page(app)  # the web page at / (no key; its API calls send one)

    @app.get("/healthz", response_model=Health, tags=["operations"])
    def healthz() -> Health:
        """The process is up."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["operations"],
        responses={503: {"model": ErrorResponse, "description": "The store is unreachable."}},
    )
    def readyz() -> Any:
        """A model is loaded and the store answers."""
        try:
            service.store.ping()
        except Exception as e:
            return JSONResponse(status_code=503, content=error_body(f"store: {type(e).__name__}"))
        model = service.current
        return Readiness(status="ready", model_version=model.version, items=model.n_items)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    def prometheus_metrics() -> Response:
        """Prometheus metrics (text format)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        ROUTE,
        response_model=RecommendationList,
        dependencies=read,
        responses=_ERRORS,
        tags=["recommendations"],
    )
    async def user_recommendations(
        user_id: UserId,
        k: K = 10,
        diversity: Diversity = None,
        diversity_method: Annotated[DiversityMethod | None, Query()] = None,
        explain: Annotated[bool, Query(description="Attach why each item was chosen.")] = False,
    ) -> Response:
        """Top ``k`` for a user, from their training history and every event stored since."""
        if explain:  # slow (it scores many reduced histories): kept out of the shared batches
            answer = await run_in_threadpool(
                service.recommend_for_user,
                user_id,
                k=k,
                diversity=diversity,
                diversity_method=diversity_method,
                explain=True,
            )
        else:  # served with the other requests waiting at that moment (one model call)
            query = UserQuery(user_id, k, diversity, diversity_method)
            answer = await service.queue.submit(query)
        body = recommendations_body(user_id, answer.model_version, answer.items)
        return Response(body, media_type="application/json")

    @app.post(
        "/v1/recommendations",
        response_model=RecommendationList,
        dependencies=read,
        responses=_ERRORS,
        tags=["recommendations"],
    )
    def adhoc_recommendations(body: RecommendRequest) -> Response:
        """Top ``k`` for an ad-hoc history of item ids and/or a sentence of preferences."""
        out = service.recommend_for_history(
            body.history,
            body.text if body.text and body.text.strip() else None,
            k=body.k,
            diversity=body.diversity,
            diversity_method=body.diversity_method,
            explain=body.explain,
            exclude_seen=body.exclude_seen,
        )
        text = recommendations_body(None, out.model_version, out.items)
        return Response(text, media_type="application/json")

    @app.get(
        "/v1/items/{item_id}/similar",
        response_model=SimilarItemList,
        dependencies=read,
        responses=_ERRORS,
        tags=["items"],
    )
    def similar_items(item_id: ItemId, k: K = 10) -> SimilarItemList:
        """The ``k`` items closest to an item (cosine similarity of the model's item vectors)."""
        out = service.similar_items(item_id, k)
        items = [
            SimilarItem(item_id=i, rank=r, score=s, title=t, categories=c)
            for r, (i, s, t, c) in enumerate(out.items, start=1)
        ]
        return SimilarItemList(item_id=item_id, model_version=out.model_version, items=items)

    @app.post(
        "/v1/events",
        response_model=IngestResponse,
        dependencies=write,
        responses=_ERRORS,
        tags=["events"],
        description=f"Store a batch of at most {MAX_EVENTS} interactions in one transaction; "
        "the answer comes after the commit. A repeated event_id is stored once.",
    )
    def post_events(body: EventBatch) -> IngestResponse:
        batch = [
            StoredEvent(
                event_id=e.event_id,
                user_id=e.user_id,
                item_id=e.item_id,
                type=e.type,
                timestamp=e.unix_time(),
                rating=e.rating,
            )
            for e in body.events
        ]
        result = service.ingest(batch)
        return IngestResponse(
            received=len(batch), stored=result.stored, duplicates=result.duplicates
        )

    @app.put(
        "/v1/items/{item_id}",
        response_model=ItemResponse,
        dependencies=write,
        responses={**_ERRORS, 201: {"model": ItemResponse, "description": "Created."}},
        tags=["items"],
    )
    def put_item(item_id: ItemId, body: ItemBody, response: Response) -> ItemResponse:
        """Create or update an item from its text; it is recommendable when this returns."""
        change = service.put_item(
            item_id, title=body.title, text=body.text, categories=body.categories
        )
        response.status_code = 201 if change.created else 200
        return ItemResponse(
            item_id=item_id,
            created=change.created,
            model_version=change.model_version,
            indexed=change.indexed,
        )

    @app.delete(
        "/v1/items/{item_id}",
        response_model=ItemDeleted,
        dependencies=write,
        responses=_ERRORS,
        tags=["items"],
    )
    def delete_item(item_id: ItemId) -> ItemDeleted:
        """Remove an item from all results."""
        service.delete_item(item_id)
        return ItemDeleted(item_id=item_id, deleted=True)

    @app.delete(
        "/v1/users/{user_id}",
        response_model=UserDeleted,
        dependencies=write,
        responses=_ERRORS,
        tags=["users"],
    )
    def delete_user(user_id: UserId) -> UserDeleted:
        """Delete a user's events and stop using their training history; says what went."""
        out = service.forget_user(user_id)
        return UserDeleted(
            user_id=out.user_id,
            events_deleted=out.events_deleted,
            training_history_items=out.training_history_items,
        )

    @app.post(
        "/v1/admin/reload",
        response_model=ReloadResponse,
        dependencies=admin,
        responses={**_ERRORS, 409: {"model": ErrorResponse, "description": "Run not loadable."}},
        tags=["admin"],
    )
    def reload_model(body: ReloadRequest | None = None) -> ReloadResponse:
        """Load a run directory (default: the current one) and swap it in atomically."""
        out = service.reload(body.run if body is not None else None)
        return ReloadResponse(
            model_version=out.model_version,
            previous_version=out.previous_version,
            run=out.run,
            seconds=out.seconds,
        )

    # Outside the routing but inside the metrics: plain requests of the route are answered
    # there (same checks, same bytes), the rest reach FastAPI.
    route = next(r for r in app.routes if getattr(r, "path", None) == ROUTE)
    app.add_middleware(UserRecommendationsFastPath, service=service, keys=keys, route=route)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
