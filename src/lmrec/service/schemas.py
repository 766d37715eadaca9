"""Request and response bodies of the HTTP API, with their limits.

Limits are part of the contract (and of the OpenAPI schema): ids up to 128 characters, ``k``
from 1 to 100, histories up to 500 items, texts up to 10,000 characters. A batch of more
than :data:`~lmrec.service.runtime.MAX_EVENTS` events is refused with 413 (too large), not 422.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from lmrec.service.runtime import MAX_EVENTS
from lmrec.service.store import ID_CHARS

MAX_K = 100
MAX_HISTORY = 500
MAX_TEXT_CHARS = 10_000
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Request bodies above this are answered with 413 before they are parsed."""

ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
"""Ids hold no control characters (PostgreSQL text cannot hold NUL)."""
TEXT_PATTERN = r"^[^\x00]*$"

Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_CHARS, pattern=ID_PATTERN)]
EventType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
DiversityMethod = Literal["mmr", "dpp"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: a message, and per field what is wrong (422)."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class Event(_Body):
    """One interaction."""

    event_id: Id = Field(description="The client's id of the event; a repeat is stored once.")
    user_id: Id
    item_id: Id
    type: EventType = Field(default="interaction", description="e.g. view, click, rating.")
    timestamp: datetime = Field(description="ISO 8601 (UTC when no offset) or Unix seconds.")
    rating: float | None = Field(default=None, ge=-1e6, le=1e6, allow_inf_nan=False)

    def unix_time(self) -> float:
        stamp = self.timestamp
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.timestamp()


class EventBatch(_Body):
    events: list[Event] = Field(
        min_length=1, description=f"At most {MAX_EVENTS} events (more: 413)."
    )


class IngestResponse(BaseModel):
    received: int
    stored: int = Field(description="Events newly stored (committed before this answer).")
    duplicates: int = Field(description="Events whose event_id was already stored.")


class Recommendation(BaseModel):
    item_id: str
    rank: int
    score: float
    title: str
    categories: list[str]
    retrieval_score: float | None = None
    explanation: dict[str, Any] | None = None


class RecommendationList(BaseModel):
    user_id: str | None = None
    model_version: str
    items: list[Recommendation]


class RecommendRequest(_Body):
    """Recommendations for a history of item ids and/or a sentence of stated preferences."""

    history: list[Id] = Field(default_factory=list, max_length=MAX_HISTORY)
    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        pattern=TEXT_PATTERN,
        description="Stated preferences.",
    )
    k: int = Field(default=10, ge=1, le=MAX_K)
    diversity: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="0: plain; 1: most diverse. Omitted: the run's [diversity] setting.",
    )
    diversity_method: DiversityMethod | None = None
    explain: bool = False
    exclude_seen: bool = True

    @model_validator(mode="after")
    def _history_or_text(self) -> RecommendRequest:
        if not self.history and (self.text is None or not self.text.strip()):
            raise ValueError("give a non-empty history or a text (or both)")
        return self


class SimilarItem(BaseModel):
    item_id: str
    rank: int
    score: float
    title: str
    categories: list[str]


class SimilarItemList(BaseModel):
    item_id: str
    model_version: str
    items: list[SimilarItem]


class ItemBody(_Body):
    """An item's text: a title and/or a description, and categories."""

    title: str = Field(default="", max_length=500, pattern=TEXT_PATTERN)
    text: str = Field(default="", max_length=MAX_TEXT_CHARS, pattern=TEXT_PATTERN)
    categories: list[Annotated[str, StringConstraints(max_length=100, pattern=TEXT_PATTERN)]] = (
        Field(default_factory=list, max_length=50)
    )

    @model_validator(mode="after")
    def _some_text(self) -> ItemBody:
        if not self.title.strip() and not self.text.strip():
            raise ValueError("give a non-empty title or text")
        return self


class ItemResponse(BaseModel):
    item_id: str
    created: bool = Field(description="True for a new item, false for an update.")
    model_version: str
    indexed: bool = Field(description="Whether the item is in the similar-items index.")


class ItemDeleted(BaseModel):
    item_id: str
    deleted: bool


class UserDeleted(BaseModel):
    user_id: str
    events_deleted: int
    training_history_items: int = Field(
        description="Items of the model's training history no longer served for this user."
    )


class ReloadRequest(_Body):
    run: str | None = Field(
        default=None,
        max_length=4096,
        pattern=TEXT_PATTERN,
        description="Run directory; default: the current one.",
    )


class ReloadResponse(BaseModel):
    model_version: str
    previous_version: str
    run: str
    seconds: float


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    model_version: str | None = None
    items: int | None = None
