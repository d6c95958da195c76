"""Fuzz the OpenAPI schema with schemathesis against a live ``reasonrank serve`` process on the
scripted engine: generated valid and invalid requests to every operation, bounded in examples and
time (about 130 requests per rerank operation, some 15 s). No response is a 500, and every
response (status, content type, body) is one the schema declares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def live_url(module_server_factory) -> Iterator[str]:
    server = module_server_factory("--backend", "scripted", "--latency", "0.001", "--max-batch", "32")
    yield server.url
    server.stop()  # a clean shutdown, no traceback in the log


@pytest.fixture
def api_schema(live_url: str):
    return schemathesis.openapi.from_url(f"{live_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=30, deadline=10_000, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)
def test_every_response_matches_the_schema(case) -> None:
    case.call_and_validate(checks=CHECKS, timeout=30)
