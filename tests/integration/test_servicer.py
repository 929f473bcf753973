"""IMService over grpclib's in-memory channel, with the real store behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpclib.testing import ChannelFor

from improto import BatchRequest, ImServiceStub, PullRequest, SendRequest
from rpc_svc.config import Settings
from rpc_svc.server import build_services
from rpc_svc.service import ChatService
from rpc_svc.servicer import IMServicer, InFlight
from rpc_svc.store import RedisStore


@pytest.fixture
async def stub(service: ChatService) -> AsyncIterator[ImServiceStub]:
    async with ChannelFor([IMServicer(service, InFlight())]) as channel:
        yield ImServiceStub(channel)


async def test_send_then_pull_through_grpc(stub: ImServiceStub) -> None:
    sent = await stub.send(SendRequest(chat="bob:alice", text="hi", sender="bob"))
    assert sent.chat == "alice:bob"
    page = await stub.pull(PullRequest(chat="alice:bob"))
    assert [(m.chat, m.text, m.sender, m.send_time) for m in page.messages] == [
        ("alice:bob", "hi", "bob", sent.send_time)
    ]
    assert (page.has_more, page.next_cursor) == (False, sent.send_time + 1)


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (SendRequest(chat="alice", text="x", sender="alice"), "invalid_chat"),
        (SendRequest(chat="a:b", text="x", sender="c"), "sender_not_in_chat"),
        (SendRequest(chat="a:b", text="", sender="a"), "invalid_text"),
        (SendRequest(chat="a:b", text="x" * 4097, sender="a"), "text_too_long"),
        (
            SendRequest(chat="a:b", text="x", sender="a", client_msg_id="k" * 65),
            "invalid_client_msg_id",
        ),
        (PullRequest(chat="a:b", limit=1001), "invalid_limit"),
        (PullRequest(chat="a:b", cursor=-1), "invalid_cursor"),
    ],
)
async def test_bad_requests_are_invalid_argument_with_a_code(
    stub: ImServiceStub, store: RedisStore, request_: SendRequest | PullRequest, code: str
) -> None:
    call = stub.send(request_) if isinstance(request_, SendRequest) else stub.pull(request_)
    with pytest.raises(GRPCError) as err:
        await call
    assert err.value.status is Status.INVALID_ARGUMENT
    assert (err.value.message or "").startswith(f"{code}: ")
    assert await store.read("a:b", 0, 10, reverse=False) == []


async def test_an_unreachable_store_is_unavailable(redis_proc: object) -> None:
    dead = RedisStore.from_url(
        "redis://127.0.0.1:1/0", max_connections=1, timeout_s=0.5, idempotency_ttl_s=60
    )
    async with ChannelFor([IMServicer(ChatService(dead, 4096), InFlight())]) as channel:
        with pytest.raises(GRPCError) as err:
            await ImServiceStub(channel).send(SendRequest(chat="a:b", text="x", sender="a"))
    await dead.close()
    assert err.value.status is Status.UNAVAILABLE
    assert (err.value.message or "").startswith("store_unavailable: ")


async def test_health_reports_the_store(store: RedisStore) -> None:
    async with ChannelFor(build_services(Settings(), store, InFlight())) as channel:
        reply = await HealthStub(channel).Check(HealthCheckRequest(service="improto.IMService"))
    assert reply.status == HealthCheckResponse.SERVING


async def test_a_batch_answers_each_call_in_order(stub: ImServiceStub) -> None:
    calls = [
        ["send", "bob:alice", "bob", "one", ""],
        ["send", "alice:bob", "carol", "no", ""],
        ["send", "alice:bob", "alice", "two", "key"],
        ["send", "alice:bob", "alice", "two", "key"],
        ["pull", "alice:bob", 0, 10, False],
        ["pull", "alice:bob", 0, 1001, False],
        ["nonsense"],
    ]
    reply = await stub.batch(BatchRequest(calls=orjson.dumps(calls)))
    index = orjson.loads(reply.index)
    bodies, offset = [], 0
    for _, length in index:
        bodies.append(reply.bodies[offset : offset + length])
        offset += length
    assert [status for status, _ in index] == [0, 3, 0, 0, 0, 3, 3]
    first, second = orjson.loads(bodies[0]), orjson.loads(bodies[2])
    assert orjson.loads(bodies[3]) == second  # the repeated key answered as the first time
    assert bodies[1].startswith(b"sender_not_in_chat: ")
    page = orjson.loads(bodies[4])
    assert [(m["text"], m["send_time"]) for m in page["messages"]] == [
        ("one", first["send_time"]),
        ("two", second["send_time"]),
    ]
    assert bodies[5].startswith(b"invalid_limit: ")
    assert bodies[6].startswith(b"invalid_batch: ")


async def test_a_batch_that_is_not_json_is_invalid_argument(stub: ImServiceStub) -> None:
    with pytest.raises(GRPCError) as err:
        await stub.batch(BatchRequest(calls=b"{"))
    assert err.value.status is Status.INVALID_ARGUMENT
