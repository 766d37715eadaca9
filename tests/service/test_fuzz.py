"""Property-based fuzzing against the OpenAPI schema (schemathesis): no input gets a 5xx, and
every answer has a documented status, content type and body shape.

Bounded: per operation, a few dozen valid and a few dozen invalid requests (well under a
minute in all). The cases are driven through Hypothesis directly (schemathesis' lazy pytest
fixture does not support pytest 9).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from lmrec.service import RecommendationService, Store, create_app, create_key

EXAMPLES = 20
"""Per operation and per mode (valid, invalid)."""
FEWER = {"/v1/admin/reload": 6}
"""Slow operations (a reload loads the run again) get fewer examples."""

OPERATIONS = [
    ("GET", "/v1/users/{user_id}/recommendations"),
    ("POST", "/v1/recommendations"),
    ("GET", "/v1/items/{item_id}/similar"),
    ("POST", "/v1/events"),
    ("PUT", "/v1/items/{item_id}"),
    ("DELETE", "/v1/items/{item_id}"),
    ("DELETE", "/v1/users/{user_id}"),
    ("POST", "/v1/admin/reload"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_service(
    text_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RecommendationService]:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'service.db'}")
    yield RecommendationService(store, text_run)
    store.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_service: RecommendationService) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzz_service))


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    found = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


NO_INPUT = {"/healthz", "/readyz", "/metrics"}
"""Operations without parameters or body: there is no invalid request to make."""
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if not (path in NO_INPUT and mode is GenerationMode.NEGATIVE)
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_input_gets_a_server_error(
    api_schema: Any,
    fuzz_service: RecommendationService,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = api_schema[path][method]
    headers = {"Authorization": f"Bearer {create_key(fuzz_service.store, 'admin').key}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=FEWER.get(path, EXAMPLES),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
