"""IMService's BatchStream over grpclib's in-memory channel, with the real store behind it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpclib.testing import ChannelFor

from im_common.batch_messages import BatchReplyMessage, BatchRequestMessage
from im_common.calls import SyncCall, encode
from im_common.rpc_names import BATCH_STREAM
from rpc_svc.config import Settings
from rpc_svc.edge.servicer import IMServicer, InFlight
from rpc_svc.server import build_services, open_store
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import RedisStore
from rpc_svc.store.keys import feed_key
from tests.store_calls import read


async def _batch(channel: Channel, calls: bytes) -> BatchReplyMessage:
    """One batch on a BatchStream of `channel`, and its reply."""
    request = channel.request(
        BATCH_STREAM, Cardinality.STREAM_STREAM, BatchRequestMessage, BatchReplyMessage
    )
    async with request as stream:
        await stream.send_request()
        await stream.send_message(BatchRequestMessage(calls, 7), end=True)
        reply = await stream.recv_message()
    assert reply is not None
    assert reply.id == 7
    return reply


def _answers(reply: BatchReplyMessage) -> list[tuple[int, Any]]:
    """(status, body: JSON for OK, the status message otherwise) of each call."""
    out, offset = [], 0
    for status, length in orjson.loads(reply.index):
        body = reply.bodies[offset : offset + length]
        offset += length
        out.append((status, orjson.loads(body) if status == 0 else body.decode()))
    return out


@pytest.fixture
async def channel(service: ChatService) -> AsyncIterator[Channel]:
    async with ChannelFor([IMServicer(service, InFlight())]) as channel:
        yield channel


async def test_send_then_pull_through_grpc(channel: Channel) -> None:
    ((status, sent),) = _answers(
        await _batch(channel, orjson.dumps([["send", "bob:alice", "bob", "hi"]]))
    )
    assert (status, sent["chat"]) == (0, "alice:bob")
    ((status, page),) = _answers(await _batch(channel, orjson.dumps([["pull", "alice:bob"]])))
    assert page == {
        "messages": [
            {"chat": "alice:bob", "text": "hi", "sender": "bob", "send_time": sent["send_time"]}
        ],
        "has_more": False,
        "next_cursor": sent["send_time"] + 1,
    }


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (["send", "alice", "alice", "x"], "invalid_chat"),
        (["send", "a:b", "c", "x"], "sender_not_in_chat"),
        (["send", "a:b", "a", ""], "invalid_text"),
        (["send", "a:b", "a", "x" * 4097], "text_too_long"),
        (["send", "a:b", "a", "x", "k" * 65], "invalid_client_msg_id"),
        (["pull", "a:b", 0, 1001], "invalid_limit"),
        (["pull", "a:b", -1], "invalid_cursor"),
        (["pull", "a:b", "not a cursor"], "invalid_batch"),
        (["read", "#", "a", 1], "invalid_chat"),
    ],
)
async def test_bad_calls_are_invalid_argument_with_a_code(
    channel: Channel, store: RedisStore, call: list[Any], code: str
) -> None:
    ((status, message),) = _answers(await _batch(channel, orjson.dumps([call])))
    assert status == Status.INVALID_ARGUMENT.value
    assert message.startswith(f"{code}: ")
    assert await read(store, "a:b", 0, 10, reverse=False) == []


async def test_an_unreachable_store_is_unavailable(redis_proc: object) -> None:
    dead = open_store(
        "redis://127.0.0.1:1/0", max_connections=1, timeout_s=0.5, idempotency_ttl_s=60
    )
    async with ChannelFor([IMServicer(ChatService(dead, 4096), InFlight())]) as channel:
        ((status, message),) = _answers(
            await _batch(channel, orjson.dumps([["send", "a:b", "a", "x"]]))
        )
    await dead.close()
    assert status == Status.UNAVAILABLE.value
    assert message.startswith("store_unavailable: ")


async def test_health_reports_the_store(store: RedisStore) -> None:
    async with ChannelFor(build_services(Settings(), store, InFlight())) as channel:
        reply = await HealthStub(channel).Check(HealthCheckRequest(service="improto.IMService"))
    assert reply.status == HealthCheckResponse.SERVING


async def test_a_batch_answers_each_call_in_order(channel: Channel) -> None:
    calls = [
        ["send", "bob:alice", "bob", "one", ""],
        ["send", "alice:bob", "carol", "no", ""],
        ["send", "alice:bob", "alice", "two", "key"],
        ["send", "alice:bob", "alice", "two", "key"],
        ["pull", "alice:bob", 0, 10, False],
        ["pull", "alice:bob", 0, 1001, False],
        ["nonsense"],
    ]
    answers = _answers(await _batch(channel, orjson.dumps(calls)))
    assert [status for status, _ in answers] == [0, 3, 0, 0, 0, 3, 3]
    first, second = answers[0][1], answers[2][1]
    assert answers[3][1] == second  # the repeated key answered as the first time
    assert answers[1][1].startswith("sender_not_in_chat: ")
    assert [(m["text"], m["send_time"]) for m in answers[4][1]["messages"]] == [
        ("one", first["send_time"]),
        ("two", second["send_time"]),
    ]
    assert answers[5][1].startswith("invalid_limit: ")
    assert answers[6][1] == "invalid_batch: malformed batch call ('nonsense')"


async def test_a_batch_that_is_not_a_json_array_answers_no_call(channel: Channel) -> None:
    assert (await _batch(channel, b"{")).index == b"[]"
    assert (await _batch(channel, b'{"a": 1}')).index == b"[]"


async def test_only_a_sync_token_naming_writes_the_store_lost_is_logged_as_a_failure(
    channel: Channel, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Both answer 410 sync_reset (OUT_OF_RANGE); a token older than what is kept is the
    client's and logs nothing, one naming records the store lost (a failover, an append-only
    file cut short) is the store's failure, logged for the operator."""

    async def sync(user: str, since: str = "") -> tuple[int, Any]:
        (answer,) = _answers(await _batch(channel, encode([SyncCall(user, since)])))
        return answer

    caplog.set_level(logging.WARNING, logger="rpc_svc.edge.servicer")
    _, carol = await sync("carol")
    await redis_client.delete(feed_key("carol"))  # (dropped after a long idle time)
    gone = await sync("carol", carol["next"])
    assert (gone[0], gone[1].split(";")[0]) == (
        Status.OUT_OF_RANGE.value,
        "sync_reset: since: the token is older than the events kept (or the feed was dropped "
        "after a long idle time)",
    )
    assert caplog.records == []
    _, bob = await sync("bob")
    await _batch(channel, orjson.dumps([["send", "alice:bob", "alice", "hi"]]))
    _, read = await sync("bob", bob["next"])
    assert [e["message"]["text"] for e in read["events"]] == ["hi"]
    await redis_client.ltrim(feed_key("bob"), 0, -2)  # the store lost that record
    lost = await sync("bob", read["next"])
    assert (lost[0], lost[1].split(";")[0]) == (
        Status.OUT_OF_RANGE.value,
        "sync_reset: since: the store lost events this token had seen (a failover, or a "
        "restart that lost its newest writes)",
    )
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "1 call(s) failed: sync_reset: since: the store lost events this token had seen (a "
        "failover, or a restart that lost its newest writes)"
    ]
