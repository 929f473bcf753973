"""nginx in front of the gateways (deploy/nginx/im.conf.template) answers its own errors
in the API's JSON shape, with the right status and Retry-After where it applies, and
passes the gateways' own answers (bodies on GET included) through untouched."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devtools.procs import free_port, nginx_server, start_trio

pytestmark = pytest.mark.e2e


@dataclass
class Proxies:
    """nginx ports: in front of a live gateway, of a dead port, of a gateway that stalls."""

    live: int
    dead: int
    stalled: int


@pytest.fixture(scope="module")
def proxies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxies]:
    workdir: Path = tmp_path_factory.mktemp("nginx-errors")
    trio = start_trio(workdir)
    # accepts connections into its backlog and never answers: a gateway that hangs
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(16)
    procs = [
        nginx_server(workdir, [trio.gateways[0].port]).start(),
        nginx_server(workdir, [free_port()]).start(),
        nginx_server(workdir, [stalled.getsockname()[1]], read_timeout="1s").start(),
    ]
    yield Proxies(*(p.port for p in procs))
    for proc in procs:
        proc.stop()
    stalled.close()
    trio.stop()


def _is_json_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code
    assert body["message"]


async def test_a_body_over_the_limit_is_a_json_413(proxies: Proxies) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proxies.live}") as c:
        r = await c.post("/api/send", json={"chat": "a:b", "sender": "a", "text": "x" * 70_000})
    _is_json_error(r, 413, "payload_too_large")
    assert "65536 bytes" in r.json()["message"]


async def test_no_gateway_reachable_is_a_json_502(proxies: Proxies) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proxies.dead}") as c:
        r = await c.get("/api/pull", params={"chat": "a:b"})
    _is_json_error(r, 502, "no_gateway")


async def test_a_gateway_that_does_not_answer_in_time_is_a_json_504(proxies: Proxies) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proxies.stalled}", timeout=10) as c:
        r = await c.get("/api/pull", params={"chat": "a:b"})
    _is_json_error(r, 504, "gateway_timeout")


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET /ping HTTP/1.1\r\n\r\n", 400, "bad_request"),  # HTTP/1.1 without Host
        (
            b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
            431,
            "header_too_large",
        ),
        (b"GET /" + b"a" * 40_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    ],
)
def test_a_malformed_request_is_a_json_error(
    proxies: Proxies, request_bytes: bytes, status: int, code: str
) -> None:
    got, headers, body = _raw(proxies.live, request_bytes)
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert httpx.Response(status, content=body).json()["error"] == code


async def test_the_gateways_answers_pass_through(proxies: Proxies) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proxies.live}") as c:
        for i in range(3):
            sent = await c.post("/api/send", json={"chat": "n:m", "sender": "n", "text": f"{i}"})
            assert sent.status_code == 200
        page = await c.request("GET", "/api/pull", json={"chat": "n:m", "limit": 2})
        missing = await c.get("/api/nothing")
    assert [m["text"] for m in page.json()["messages"]] == ["0", "1"]
    assert page.json()["has_more"] is True
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"  # the gateway's own 404, not nginx's
