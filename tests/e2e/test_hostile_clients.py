"""Careless or hostile clients on raw sockets: whatever they send, they get a 4xx (or are
disconnected), nothing of theirs is stored, and every other client is served as if they
were not there. Every loop here is bounded in count and time, on loopback only."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from devtools.procs import HOST, Trio, start_trio
from devtools.rawhttp import Answer, Connection

pytestmark = pytest.mark.e2e

BOUNDARY = b"im-test-boundary-7f3a"
UTF7_PART = (
    b'--%(b)s\r\nContent-Disposition: form-data; name="text"\r\n'
    b"Content-Type: text/plain; charset=utf-7\r\n\r\n+2AA-\r\n"
    b'--%(b)s\r\nContent-Disposition: form-data; name="chat"\r\n\r\nbad:x\r\n'
    b'--%(b)s\r\nContent-Disposition: form-data; name="sender"\r\n\r\nbad\r\n--%(b)s--\r\n'
) % {b"b": BOUNDARY}
FORM = b"chat=bad:x&sender=bad&text=hello"
RPC_POOL = 16  # im-rpc's Redis connections: it may fill its pool, and keeps it


def _request(head: bytes, body: bytes = b"") -> bytes:
    return head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


# Requests whose bytes broke the JSON encoding of a whole batch in the gateway.
BAD_SENDS = {
    "header byte": _request(
        b"POST /api/send HTTP/1.1\r\nHost: x\r\nIdempotency-Key: \xff\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n",
        FORM,
    ),
    "utf-7 part": _request(
        b"POST /api/send HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=" + BOUNDARY + b"\r\n",
        UTF7_PART,
    ),
}


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    workdir: Path = tmp_path_factory.mktemp("hostile")
    trio = start_trio(workdir, rpc_settings={"IM_REDIS_MAX_CONNECTIONS": str(RPC_POOL)})
    yield trio
    trio.stop()


async def _raw(port: int, request: bytes) -> Answer:
    conn = await Connection.open(port)
    try:
        return await conn.raw(request)
    finally:
        await conn.close()


@pytest.mark.parametrize("name", list(BAD_SENDS))
async def test_a_bad_send_alone_is_a_4xx(trio: Trio, name: str) -> None:
    answer = await _raw(trio.gateways[0].port, BAD_SENDS[name])
    assert answer.status == 400
    assert answer.json() == {
        "error": "invalid_utf8",
        "message": "the Idempotency-Key header is not valid UTF-8"
        if name == "header byte"
        else "a form field is not valid UTF-8",
    }


async def test_bad_bytes_never_fail_other_clients_sends(trio: Trio) -> None:
    """50 honest senders and 3 clients sending bad bytes, for 3 s: every honest send 200 and
    stored once, every bad one a 400, nothing stored for them."""
    port, seconds = trio.gateways[0].port, 3.0
    deadline = time.monotonic() + seconds
    honest: Counter[int] = Counter()
    bad: Counter[int] = Counter()
    acked: dict[str, int] = {}

    async def honest_sender(i: int) -> None:
        conn = await Connection.open(port)
        chat, sent = f"h{i}:peer", 0
        while time.monotonic() < deadline and sent < 5000:
            r = await conn.post_json("/api/send", {"chat": chat, "sender": f"h{i}", "text": "ok"})
            honest[r.status] += 1
            sent += r.status == 200
        acked[chat] = sent
        await conn.close()

    async def bad_sender(request: bytes) -> None:
        conn = await Connection.open(port)
        for _ in range(5000):
            if time.monotonic() >= deadline:
                break
            bad[(await conn.raw(request)).status] += 1
        await conn.close()

    bad_requests = [*BAD_SENDS.values(), BAD_SENDS["header byte"]]
    await asyncio.gather(
        *(honest_sender(i) for i in range(50)), *(bad_sender(r) for r in bad_requests)
    )
    assert set(honest) == {200}, honest
    assert set(bad) == {400}, bad
    assert honest[200] > 100  # both kinds really ran at once
    assert bad[400] > 30
    client = aioredis.Redis(host=HOST, port=trio.redis.port, decode_responses=True)
    try:
        for chat, n in acked.items():  # a short chat's hash, or the stream it moved into
            short = await client.hlen(f"im:{{{chat}}}:s")
            assert short + await client.xlen(f"im:{{{chat}}}:m") == n
        assert not [k async for k in client.scan_iter("*bad*")]
    finally:
        await client.aclose()


HALF_SENT = {
    "short body": b"POST /api/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"chat":',
    "unfinished chunks": b"POST /api/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Transfer-Encoding: chunked\r\n\r\n8\r\n{"chat":\r\n',
}


async def _answer_then_close(port: int, request: bytes) -> tuple[bytes, float]:
    """Send `request`, read until the gateway closes the connection: what it answered, and
    after how long it closed (bounded: 15 s)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    started = time.monotonic()
    writer.write(request)
    data = await asyncio.wait_for(reader.read(-1), 15)  # until EOF: the socket was closed
    writer.close()
    return data, time.monotonic() - started


@pytest.mark.parametrize("name", list(HALF_SENT))
async def test_a_half_sent_body_gets_408_and_its_socket_closed(trio: Trio, name: str) -> None:
    gateway = trio.add_gateway(IM_HTTP_BODY_TIMEOUT_S="1")
    try:
        answers = await asyncio.gather(
            *(_answer_then_close(gateway.port, HALF_SENT[name]) for _ in range(20))
        )
        for data, took in answers:
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), data
            assert orjson.loads(body) == {
                "error": "request_timeout",
                "message": "the request body did not arrive within 1 s",
            }
            assert 0.9 < took < 3.0
        # an honest client on the same gateway meanwhile and after
        conn = await Connection.open(gateway.port)
        r = await conn.post_json("/api/send", {"chat": "ok:x", "sender": "ok", "text": "hi"})
        await conn.close()
        assert r.status == 200
    finally:
        trio.gateways.remove(gateway)
        gateway.stop()


async def _shard_channels(redis_port: int) -> int:
    client = aioredis.Redis(host=HOST, port=redis_port)
    try:
        return len(await client.execute_command("PUBSUB", "SHARDCHANNELS"))  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()


POLLS = 150


async def _until(done: Callable[[int], bool], redis_port: int, seconds: float) -> None:
    """Poll the count of shard channels until `done(count)` or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while not done(await _shard_channels(redis_port)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


async def test_long_polls_whose_clients_left_stop_waiting_in_im_rpc(trio: Trio) -> None:
    """POLLS long polls (wait_ms 30 s) whose clients disconnect: im-rpc stops each wait, so its
    wake-up subscriptions go within a sweep (5 s), not after the 30 s; the gateway counts
    each as a 499, never a 500, and logs no error."""
    gateway = trio.add_gateway(IM_HTTP_MAX_WAITING_PER_USER=str(POLLS))
    try:
        conns = await asyncio.gather(*(Connection.open(gateway.port) for _ in range(POLLS)))
        for i, conn in enumerate(conns):
            conn.send_only(
                f"GET /api/pull?chat=gone{i}:x&wait_ms=30000 HTTP/1.1\r\nHost: x\r\n\r\n"
            )
        await _until(lambda n: n >= POLLS, trio.redis.port, 5)  # every poll waits in im-rpc
        assert await _shard_channels(trio.redis.port) >= POLLS
        await asyncio.gather(*(conn.close() for conn in conns))
        left = time.monotonic()
        await _until(lambda n: n == 0, trio.redis.port, 12)
        gone_after = time.monotonic() - left
        assert await _shard_channels(trio.redis.port) == 0
        assert gone_after < 8  # the 5 s sweep, not the 30 s waits
        conn = await Connection.open(gateway.port)
        text = (await conn.get("/metrics")).body.decode()
        await conn.close()
        assert f'route="/api/pull",status="499"}} {POLLS}.0' in text
        assert 'status="500"' not in text
        assert "RequestCancelled" not in gateway.log_tail(200)
    finally:
        trio.gateways.remove(gateway)
        gateway.stop()


def _junk() -> list[bytes]:
    """Requests no client should send: broken heads, bad bytes in every header and part the
    gateway reads, made-up methods and paths, broken bodies. Each gets a 4xx or is dropped."""
    send = b"POST /api/send HTTP/1.1\r\nHost: x\r\n"
    form = b"Content-Type: application/x-www-form-urlencoded\r\n"
    part = (
        b"--"
        + BOUNDARY
        + b'\r\nContent-Disposition: form-data; name="%s"\r\n%s\r\n%s\r\n--'
        + BOUNDARY
        + b"--\r\n"
    )
    multipart = b"Content-Type: multipart/form-data; boundary=" + BOUNDARY + b"\r\n"
    junk = [
        b"\x00\x01\x02 garbage\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /" + b"%ff" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        _request(send + b"Idempotency-Key: \xff\xfe\r\n" + form, FORM),
        _request(send + b"X-Request-ID: \xff\r\n" + form, b"chat=junk:x&sender=\xff&text=a"),
        _request(send + b"X-IM-Retry-Key: \xc3\x28\r\n" + form, b"chat=junk:x&sender=junk"),
        _request(send + b"Content-Type: \xff/\xfe\r\n", b"{}"),
        _request(send + b"Content-Type: multipart/form-data; boundary=\xff\r\n", b"--\xff--"),
        _request(
            send + multipart,
            part % (b"text", b"Content-Type: text/plain; charset=utf-7\r\n", b"+2AA-"),
        ),
        _request(
            send + multipart, part % (b"text", b"Content-Type: text/plain; charset=nope\r\n", b"x")
        ),
        _request(send + multipart, part % (b"\xff", b"", b"x")),
        _request(send + b"Content-Type: application/json\r\n", b'{"chat":"junk:x","text":"\xff"}'),
        _request(send + b"Content-Type: application/json\r\n", b"[" * 5000),
        _request(send + b"Content-Type: application/json\r\n", b'{"chat":"junk:\\ud800x"}'),
        send + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        send + b"Content-Length: -5\r\n\r\n",
        send + b"Content-Length: 99999999999\r\n\r\n",
    ]
    junk += [f"X{i}Y /api/send HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(40)]
    junk += [f"GET /junk/{i}/../../%00 HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(40)]
    return junk


async def _one(port: int, request: bytes) -> int | None:
    """Send `request` on its own connection: the status answered, or None if dropped."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request)
        data = await asyncio.wait_for(reader.read(65536), 5)
    except (ConnectionError, TimeoutError):
        return None
    finally:
        writer.close()
    head = data.split(b"\r\n", 1)[0].split()
    return int(head[1]) if len(head) > 1 and head[1].isdigit() else None


def _usage(pid: int) -> tuple[int, int]:
    """(resident memory in kB, open file descriptors) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
    return rss, len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def _series(port: int) -> int:
    conn = await Connection.open(port)
    text = (await conn.get("/metrics")).body.decode()
    await conn.close()
    return sum(1 for line in text.splitlines() if line.startswith("im_http_requests_total{"))


async def test_after_a_storm_of_junk_the_processes_are_back_where_they_were(trio: Trio) -> None:
    """Five rounds of every junk request, half-sent bodies and abandoned long polls: every
    answer a 4xx (or a dropped connection), nothing stored, and afterwards each process is
    back within bounds: open descriptors +5 (im-rpc: + its Redis pool, which it keeps),
    RSS +25 MB, metric series +10, Redis keys +0, wake-up subscriptions 0."""
    gateway = trio.add_gateway(IM_HTTP_BODY_TIMEOUT_S="1")
    port = gateway.port
    client = aioredis.Redis(host=HOST, port=trio.redis.port)
    try:
        conn = await Connection.open(port)  # warm: the routes each answer once
        for path in ("/ping", "/api/pull?chat=a:b", "/api/chats?user=a", "/metrics"):
            await conn.get(path)
        await conn.close()
        pids = {"im-http": gateway.proc.pid, "im-rpc": trio.rpc.proc.pid}  # type: ignore[union-attr]
        before = {name: _usage(pid) for name, pid in pids.items()}
        series, keys = await _series(port), await client.dbsize()
        statuses: Counter[int | None] = Counter()
        for _ in range(5):
            answers = await asyncio.gather(*(_one(port, r) for r in _junk()))
            statuses.update(answers)
            half = [HALF_SENT["short body"], HALF_SENT["unfinished chunks"]] * 10
            statuses.update(await asyncio.gather(*(_one(port, r) for r in half)))
            polls = await asyncio.gather(*(Connection.open(port) for _ in range(50)))
            for i, poll in enumerate(polls):
                poll.send_only(
                    f"GET /api/pull?chat=storm{i}:x&wait_ms=30000 HTTP/1.1\r\nHost: x\r\n\r\n"
                )
            await asyncio.sleep(0.3)
            await asyncio.gather(*(poll.close() for poll in polls))
        assert all(s is None or 400 <= s < 500 for s in statuses), statuses
        assert statuses[400] >= 50, statuses  # the junk was read and refused, not ignored
        await asyncio.sleep(6)  # the wake-up sweep (5 s) drops the abandoned polls' channels
        after = {name: _usage(pid) for name, pid in pids.items()}
        pool = {"im-http": 0, "im-rpc": RPC_POOL}
        for name in pids:
            (rss0, fds0), (rss1, fds1) = before[name], after[name]
            assert fds1 <= fds0 + pool[name] + 5, (name, fds0, fds1)
            assert rss1 <= rss0 + 25_000, (name, rss0, rss1)
        assert await _series(port) <= series + 10
        assert await client.dbsize() == keys
        assert await _shard_channels(trio.redis.port) == 0
        assert "Traceback" not in gateway.log_tail(500)
    finally:
        await client.aclose()
        trio.gateways.remove(gateway)
        gateway.stop()
