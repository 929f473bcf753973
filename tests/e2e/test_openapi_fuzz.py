"""schemathesis against the gateway's own OpenAPI document: generated requests, valid and
not, to every operation; no 5xx, and every answer matches what the document says.

(schemathesis's pytest fixture integration does not run on pytest 9, so each operation's
strategy is driven by hypothesis here directly.)"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devtools.procs import start_trio

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
CASES = [  # /ping has no input to get wrong
    ("/api/send", "POST", POSITIVE),
    ("/api/send", "POST", NEGATIVE),
    ("/api/pull", "GET", POSITIVE),
    ("/api/pull", "GET", NEGATIVE),
    ("/api/chats", "GET", POSITIVE),
    ("/api/chats", "GET", NEGATIVE),
    ("/api/read", "POST", POSITIVE),
    ("/api/read", "POST", NEGATIVE),
    ("/ping", "GET", POSITIVE),
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    """The schema served by a real gateway (im-rpc and Redis behind it), bound to it."""
    trio = start_trio(tmp_path_factory.mktemp("fuzz"))
    yield schemathesis.openapi.from_url(f"{trio.url()}/openapi.json")
    trio.stop()


@pytest.mark.parametrize(
    ("path", "method", "mode"), CASES, ids=[f"{m} {p} {g.value}" for p, m, g in CASES]
)
def test_every_answer_is_documented_and_none_is_a_server_error(
    api_schema: schemathesis.BaseSchema,
    path: str,
    method: str,
    mode: schemathesis.GenerationMode,
    report: Callable[[str], None],
) -> None:
    operation = api_schema[path][method]
    statuses: Counter[int] = Counter()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case[Any]) -> None:
        wait = (case.query or {}).get("wait_ms")
        if isinstance(wait, int) and not isinstance(wait, bool) and 50 < wait <= 30_000:
            case.query["wait_ms"] = 50  # a valid long poll waits: keep the run bounded
        response = case.call(timeout=10)
        statuses[response.status_code] += 1
        assert response.status_code < 500, response.text
        case.validate_response(
            response,
            checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
        )

    check()
    report(f"{method} {path} {mode.value}: answers by status {dict(sorted(statuses.items()))}")
    assert statuses  # requests were made
