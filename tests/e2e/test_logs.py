"""Logs: one JSON object per line, the request id from the client to im-rpc and back in the
response, and never a message text."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.procs import Process, start_trio

pytestmark = pytest.mark.e2e
SECRET = "SECRET-TEXT-4242"


@pytest.fixture
def stack(workdir: Path) -> Iterator[tuple[Process, Process, Process]]:
    """Redis, im-rpc, and a gateway with the access log on."""
    trio = start_trio(workdir, gateways=[{"IM_HTTP_ACCESS_LOG": "true"}])
    yield trio.redis, trio.rpc, trio.gateways[0]
    trio.stop()


def log_lines(proc: Process) -> list[dict[str, object]]:
    """Every line of the process's log, each parsed as JSON (fails on a line that is not)."""
    return [json.loads(line) for line in proc.log.read_text().splitlines() if line.strip()]


def test_request_ids_travel_and_logs_are_json_without_texts(
    stack: tuple[Process, Process, Process],
) -> None:
    redis, rpc, gw = stack
    url = f"http://127.0.0.1:{gw.port}"
    with httpx.Client(base_url=url, timeout=10) as http:
        sent = http.post(
            "/api/send",
            json={"chat": "a:b", "sender": "a", "text": SECRET},
            headers={"X-Request-ID": "rid-ok"},
        )
        assert sent.status_code == 200
        assert sent.headers["x-request-id"] == "rid-ok"
        made = http.get("/api/pull", params={"chat": "a:b"})
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])  # gateway-made
        bad = http.get("/ping", headers={"X-Request-ID": "no spaces allowed"})
        assert bad.headers["x-request-id"] != "no spaces allowed"
    redis.stop()  # every call now fails on im-rpc's side, which logs their request ids
    down = httpx.post(
        f"{url}/api/send",
        json={"chat": "a:b", "sender": "a", "text": SECRET},
        headers={"X-Request-ID": "rid-down"},
        timeout=10,
    )
    assert down.status_code == 503
    assert down.headers["retry-after"] == "1"
    time.sleep(1.05)  # im-rpc logs failures at most once a second
    failed_ids: set[object] = set()
    for line in log_lines(rpc):
        failed_ids.update(line.get("request_ids", []))  # type: ignore[arg-type]
        if "request_id" in line:
            failed_ids.add(line["request_id"])
    assert "rid-down" in failed_ids
    access = [line for line in log_lines(gw) if line["logger"] == "im.access"]
    assert {(line["request_id"], line["route"], line["status"]) for line in access} >= {
        ("rid-ok", "/api/send", 200),
        ("rid-down", "/api/send", 503),
    }
    for proc in (rpc, gw):
        assert SECRET not in proc.log.read_text()
