"""schemathesis against the gateway's own OpenAPI document: generated requests, valid and
not, to every operation; no 5xx, and every answer matches what the document says. With
authentication off (the open API) and on (a valid token for one user on every request: the
document then says 401 and 403, and sender and user may be omitted).

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
from im_common.token_cli import mint

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
    ("/api/groups", "POST", POSITIVE),
    ("/api/groups", "POST", NEGATIVE),
    ("/api/groups/add", "POST", POSITIVE),
    ("/api/groups/remove", "POST", NEGATIVE),
    ("/api/groups/members", "GET", POSITIVE),
    ("/api/groups/members", "GET", NEGATIVE),
    ("/api/edit", "POST", POSITIVE),
    ("/api/recall", "POST", NEGATIVE),
    ("/ping", "GET", POSITIVE),
]


SECRET = "a-fuzz-test-secret-of-more-than-32-bytes"


@pytest.fixture(scope="module", params=["open", "auth"])
def api_schema(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[schemathesis.BaseSchema, dict[str, str]]]:
    """The schema served by a real gateway (im-rpc and Redis behind it), bound to it, and
    the headers each request carries (a token for alice when authentication is on)."""
    if request.param == "auth":
        trio = start_trio(
            tmp_path_factory.mktemp("fuzz-auth"),
            rpc_settings={"IM_RPC_REQUIRE_USER": "1"},
            gateways=[{"IM_AUTH_JWT_SECRET": SECRET}],
        )
        headers = {"Authorization": f"Bearer {mint('alice', 3600, secret=SECRET)}"}
    else:
        trio, headers = start_trio(tmp_path_factory.mktemp("fuzz")), {}
    yield schemathesis.openapi.from_url(f"{trio.url()}/openapi.json"), headers
    trio.stop()


@pytest.mark.parametrize(
    ("path", "method", "mode"), CASES, ids=[f"{m} {p} {g.value}" for p, m, g in CASES]
)
def test_every_answer_is_documented_and_none_is_a_server_error(
    api_schema: tuple[schemathesis.BaseSchema, dict[str, str]],
    path: str,
    method: str,
    mode: schemathesis.GenerationMode,
    report: Callable[[str], None],
) -> None:
    schema, headers = api_schema
    operation = schema[path][method]
    statuses: Counter[int] = Counter()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case[Any]) -> None:
        wait = (case.query or {}).get("wait_ms")
        if isinstance(wait, int) and not isinstance(wait, bool) and 50 < wait <= 30_000:
            case.query["wait_ms"] = 50  # a valid long poll waits: keep the run bounded
        response = case.call(timeout=10, headers=headers)
        statuses[response.status_code] += 1
        assert response.status_code < 500, response.text
        case.validate_response(
            response,
            checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
        )

    check()
    report(f"{method} {path} {mode.value}: answers by status {dict(sorted(statuses.items()))}")
    assert statuses  # requests were made
