"""Key rotation without a restart: a gateway re-reads IM_AUTH_JWKS_FILE when it changes (or
at once on SIGHUP); tokens of every key in the file pass, a removed key's fail, and an
unusable file changes nothing. Also: tokens never reach the logs, and the per-sender rate
limit counts the token's user."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.procs import Process, Trio, start_trio
from im_common.token_cli import add_key, mint, retire_key

pytestmark = pytest.mark.e2e


@pytest.fixture
def trio(workdir: Path) -> Iterator[Trio]:
    trio = start_trio(workdir, rpc_settings={"IM_RPC_REQUIRE_USER": "1"}, gateways=[])
    yield trio
    trio.stop()


async def _status(url: str, token: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        answer = await c.get("/api/chats", headers={"Authorization": f"Bearer {token}"})
        return answer.status_code


async def _becomes(url: str, token: str, status: int, within_s: float = 5.0) -> float:
    """Seconds until a call with `token` answers `status` (fails after `within_s`)."""
    start = time.monotonic()
    while (got := await _status(url, token)) != status:
        assert time.monotonic() - start < within_s, f"still {got}, not {status}"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def _pid(gateway: Process) -> int:
    assert gateway.proc is not None
    assert gateway.running
    return gateway.proc.pid


async def test_keys_rotate_without_a_restart(trio: Trio, workdir: Path) -> None:
    private, public = workdir / "idp.jwks", workdir / "gateway.jwks"
    old = add_key(private, public, "ES256", "old")
    gateway = trio.add_gateway(IM_AUTH_JWKS_FILE=str(public), IM_AUTH_RELOAD_S="0.2")
    pid, url = _pid(gateway), trio.url()
    old_token = mint("alice", 600, private_path=private, kid=old)
    assert await _status(url, old_token) == 200

    new = add_key(private, public, "RS256", "new")
    new_token = mint("bob", 600, private_path=private, kid=new)
    await _becomes(url, new_token, 200)
    assert await _status(url, old_token) == 200  # both keys are in the file

    both = public.read_bytes()
    public.write_text("{not json")  # a bad edit: the keys in use stay
    await asyncio.sleep(0.6)
    assert await _status(url, new_token) == 200
    assert "key set not reloaded" in gateway.log.read_text()
    public.write_bytes(both)

    retire_key(private, public, old)
    await _becomes(url, old_token, 401)
    assert await _status(url, new_token) == 200
    assert _pid(gateway) == pid


async def test_sighup_reloads_the_key_set_at_once(trio: Trio, workdir: Path) -> None:
    private, public = workdir / "idp.jwks", workdir / "gateway.jwks"
    first = add_key(private, public, "ES256", "first")
    gateway = trio.add_gateway(IM_AUTH_JWKS_FILE=str(public), IM_AUTH_RELOAD_S="3600")
    pid, url = _pid(gateway), trio.url()
    # answered once the gateway has started (and read the file): only then change it
    assert await _status(url, mint("carol", 600, private_path=private, kid=first)) == 200
    second = add_key(private, public, "ES256", "second")
    token = mint("carol", 600, private_path=private, kid=second)
    await asyncio.sleep(0.3)
    assert await _status(url, token) == 401  # not polled for an hour
    gateway.send_signal(signal.SIGHUP)
    await _becomes(url, token, 200, within_s=2.0)
    assert _pid(gateway) == pid


async def test_tokens_never_reach_the_logs(trio: Trio, workdir: Path) -> None:
    secret = "a-log-test-secret-of-more-than-32-bytes"
    gateway = trio.add_gateway(
        IM_AUTH_JWT_SECRET=secret, IM_HTTP_ACCESS_LOG="true", IM_LOG_LEVEL="DEBUG"
    )
    good = mint("dan", 600, secret=secret)
    expired = mint("dan", 1, secret=secret)
    await asyncio.sleep(1.1)
    headers = [good, expired, good[:-4] + "AAAA", "not.a.token"]
    async with httpx.AsyncClient(base_url=trio.url(), timeout=10) as c:
        for token in headers:
            auth = {"Authorization": f"Bearer {token}"}
            await c.post("/api/send", json={"chat": "dan:eve", "text": "hi"}, headers=auth)
            await c.get("/api/pull", params={"chat": "x:y"}, headers=auth)
            await c.get("/api/nothing", headers=auth)
    gateway.stop()
    logs = gateway.log.read_text() + trio.rpc.log.read_text()
    assert '"status": 401' in logs or '"status":401' in logs  # the access log did run
    for token in headers:
        for part in token.split("."):
            if len(part) > 8:
                assert part not in logs
    assert secret not in logs


async def test_the_rate_limit_counts_the_token_s_user(trio: Trio) -> None:
    secret = "a-rate-test-secret-of-more-than-32-bytes"
    trio.add_gateway(
        IM_AUTH_JWT_SECRET=secret, IM_HTTP_SENDER_RATE="0.01", IM_HTTP_SENDER_BURST="2"
    )
    statuses: dict[str, list[int]] = {"fay": [], "gus": []}
    async with httpx.AsyncClient(base_url=trio.url(), timeout=10) as c:
        for user in ("fay", "fay", "fay", "gus"):
            answer = await c.post(
                "/api/send",
                json={"chat": "fay:gus", "text": "hi"},  # sender omitted: the token's user
                headers={"Authorization": f"Bearer {mint(user, 60, secret=secret)}"},
            )
            statuses[user].append(answer.status_code)
    assert statuses == {"fay": [200, 200, 429], "gus": [200]}
