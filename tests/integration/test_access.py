"""im-rpc's authorization rules (rpc_svc/access.py through ChatService) on a real store:
with an acting user a call may only send as, and read the inbox of, that user, and pull
only a chat it is a member of; with require_user a call without one is refused. Each
refused call stores nothing."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from im_common.calls import Call, ChatsCall, GroupCall, PullCall, ReadCall, SendCall
from rpc_svc.domain.errors import Forbidden, IMError, InvalidArgument, UserRequired
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import RedisStore
from tests.conftest import key_count


async def _refused(service: ChatService, call: object, kind: type[IMError]) -> None:
    (result,) = await service.run([call])  # type: ignore[list-item]
    assert isinstance(result, kind), result


async def test_an_acting_user_sends_only_as_itself(
    service: ChatService, redis_client: aioredis.Redis
) -> None:
    await _refused(service, SendCall("ann:bob", "bob", "hi", actor="ann"), Forbidden)
    with pytest.raises(Forbidden) as refused:
        await service.send(SendCall("ann:bob", "bob", "hi", actor="ann"))
    assert refused.value.message == "sender must be the authenticated user"
    assert await key_count(redis_client) == 0
    sent = await service.send(SendCall("ann:bob", "ann", "hi", actor="ann"))
    page = await service.pull(PullCall("ann:bob", actor="bob"))
    assert [(m["sender"], m["send_time"]) for m in page.messages] == [("ann", sent.send_time)]


@pytest.mark.parametrize("chat", ["ann:bob", "bob:cid"])
async def test_a_non_member_pulls_nothing_whether_the_chat_has_messages_or_not(
    service: ChatService, chat: str
) -> None:
    await service.send(SendCall("ann:bob", "ann", "hi"))
    for call in (PullCall(chat, actor="eve"), PullCall(chat, reverse=True, actor="eve")):
        await _refused(service, call, Forbidden)
    with pytest.raises(Forbidden) as waited:
        await service.pull_wait(PullCall(chat, actor="eve"), 5_000)
    assert waited.value.message == "the authenticated user is not a member of this chat"


async def test_inbox_and_read_position_are_the_acting_users_own(
    service: ChatService, redis_client: aioredis.Redis
) -> None:
    sent = await service.send(SendCall("ann:bob", "ann", "hi"))
    before = await key_count(redis_client)
    await _refused(service, ChatsCall("bob", actor="ann"), Forbidden)
    await _refused(service, ReadCall("ann:bob", "bob", sent.send_time, actor="ann"), Forbidden)
    assert await key_count(redis_client) == before
    inbox = await service.chats(ChatsCall("bob", actor="bob"))
    assert [c["unread"] for c in inbox.chats] == [1]
    done = await service.mark_read(ReadCall("ann:bob", "bob", sent.send_time, actor="bob"))
    assert done.read_until == sent.send_time


async def test_without_an_acting_user_everything_is_open(service: ChatService) -> None:
    sent = await service.send(SendCall("ann:bob", "bob", "hi"))
    assert (await service.pull(PullCall("ann:bob"))).messages[0]["send_time"] == sent.send_time


async def test_require_user_refuses_every_call_without_one(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    strict = ChatService(store, 4096, require_user=True)
    calls: list[Call] = [
        SendCall("ann:bob", "ann", "hi"),
        PullCall("ann:bob"),
        ChatsCall("ann"),
        ReadCall("ann:bob", "ann", 1),
    ]
    for result in await strict.run(calls):
        assert isinstance(result, UserRequired)
        assert result.message == "this im-rpc serves only calls that carry the acting user"
    assert await key_count(redis_client) == 0
    sent = await strict.send(SendCall("ann:bob", "ann", "hi", actor="ann"))
    assert sent.chat == "ann:bob"


async def test_in_a_group_too_an_acting_user_sends_only_as_itself(service: ChatService) -> None:
    await service.group(GroupCall("create", "#crew", "ann", actor="ann"))
    await service.group(GroupCall("add", "#crew", "ann", "bob", actor="ann"))
    with pytest.raises(Forbidden) as refused:
        await service.send(SendCall("#crew", "bob", "hi", actor="ann"))
    assert refused.value.message == "sender must be the authenticated user"
    with pytest.raises(InvalidArgument) as bad:
        await service.send(SendCall("#crew", "b b", "hi"))
    assert bad.value.code == "invalid_sender"
    with pytest.raises(InvalidArgument) as bad_key:
        await service.send(SendCall("#crew", "bob", "hi", retry_key="x" * 65))
    assert bad_key.value.code == "invalid_retry_key"
    with pytest.raises(Forbidden) as other_user:
        await service.group(GroupCall("add", "#crew", "bob", "cid", actor="ann"))
    assert other_user.value.message == "user must be the authenticated user"
    sent = await service.send(SendCall("#crew", "bob", "hi", actor="bob"))
    assert sent.chat == "#crew"
