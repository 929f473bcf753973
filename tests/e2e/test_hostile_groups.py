"""Hostile members and waiters (the standing hostile-client suite, continued): what one
client can do to a group, to the inbox and to long polls must stay that client's problem.

The stack is the one the attacks were found on: one im-rpc and one gateway, groups of at
most 5 members and small groups of at most 3 (IM_GROUP_MAX_MEMBERS=5,
IM_GROUP_FANOUT_MAX_MEMBERS=3), authentication off and (a second gateway) on. Every loop
is bounded in count and time, on loopback only."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import redis.asyncio as aioredis

from devtools.procs import HOST, Trio, start_trio
from devtools.rawhttp import Connection
from rpc_svc.store.base import RedisStore
from rpc_svc.store.ops import AddMember, CreateGroup, GroupAppend
from tests.auth_tokens import SECRET, claims
from tests.conftest import make_store

pytestmark = pytest.mark.e2e
GROUP_LIMITS = {"IM_GROUP_MAX_MEMBERS": "5", "IM_GROUP_FANOUT_MAX_MEMBERS": "3"}
RPC_SETTINGS = {**GROUP_LIMITS, "IM_USER_MAX_GROUPS": "400", "IM_SHORT_CHAT_MESSAGES": "32"}
AUTH = {"IM_AUTH_JWT_SECRET": SECRET}
_ids = itertools.count()
_RUN = uuid.uuid4().hex[:6]
FAR = 1 << 62  # a cursor no message reaches


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    """One im-rpc; gateway 0 open, gateway 1 with authentication on."""
    workdir: Path = tmp_path_factory.mktemp("hostile-groups")
    trio = start_trio(
        workdir, rpc_settings=RPC_SETTINGS, gateways=[GROUP_LIMITS, {**GROUP_LIMITS, **AUTH}]
    )
    yield trio
    trio.stop()


@pytest.fixture
async def redis(trio: Trio) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host=HOST, port=trio.redis.port, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def store(trio: Trio) -> AsyncIterator[RedisStore]:
    """The store on the stack's Redis, as im-rpc runs it: to fill groups fast."""
    filler = make_store(trio.redis, short=32)
    yield filler
    await filler.close()


def _bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims(user), SECRET, algorithm='HS256')}"}


async def _calls(redis: aioredis.Redis) -> dict[str, int]:
    """Redis's command counts so far (commands a script runs included)."""
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def _commands_run(redis: aioredis.Redis, work: Callable[[], Any]) -> int:
    """How many commands Redis ran for `work` (scripts' own commands, not the scripts, their
    loading nor this count's INFO)."""
    before = await _calls(redis)
    await work()
    after = await _calls(redis)
    ran = {k: after[k] - before.get(k, 0) for k in after}
    overhead = ("evalsha", "info", "script|load")  # (a script loaded once is no read's work)
    return sum(ran.values()) - sum(ran.get(name, 0) for name in overhead)


def _names(prefix: str, count: int) -> list[str]:
    n = f"{_RUN}{next(_ids)}"
    return [f"{prefix}{i}x{n}" for i in range(count)]


async def _ok(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    answer = await client.post(path, json=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_concurrent_add_and_remove_never_leave_a_non_member_in_an_inbox(trio: Trio) -> None:
    """Finding 1: the owner adds and removes the same two members concurrently, 40 rounds,
    while bystanders send and read their inboxes. Every answer is 200 or the contract's 4xx;
    afterwards each of the two either is a member with the group in its inbox, or is not and
    has no trace of the group (inbox row, read position, group set), and its inbox reads."""
    owner, v, w, bystander = _names("u", 4)
    group = f"#race{_RUN}{next(_ids)}"
    redis = aioredis.Redis(host=HOST, port=trio.redis.port, decode_responses=True)
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=trio.url(), timeout=10) as client:
        await _ok(client, "/api/groups", chat=group, user=owner)
        await _ok(client, "/api/send", chat=group, sender=owner, text="first")

        async def call(path: str, **params: Any) -> None:
            answer = await client.post(path, json=params)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        async def bystanders() -> None:
            for i in range(40):
                await call("/api/send", chat=f"{bystander}:peer", sender=bystander, text=f"b{i}")
                got = await client.get("/api/chats", params={"user": bystander})
                statuses[got.status_code] = statuses.get(got.status_code, 0) + 1

        async def check(user: str, members: list[str]) -> None:
            inbox = await client.get("/api/chats", params={"user": user})
            assert inbox.status_code == 200, inbox.text
            listed = [c["chat"] for c in inbox.json()["chats"]]
            in_group = user in members
            assert listed == ([group] if in_group else []), (user, in_group, listed)
            traces = (
                await redis.zscore(f"im:{{{user}}}:inbox", group),
                await redis.hget(f"im:{{{user}}}:read", group),
                await redis.sismember(f"im:{{{user}}}:groups", group),
            )
            if not in_group:
                assert traces == (None, None, 0), (user, traces)
            else:
                assert traces[0] is not None, (user, traces)
                assert traces[2] == 1, (user, traces)

        async def rounds() -> None:
            for i in range(40):  # each order of the four calls; then check both members
                ops = [(op, m) for m in (v, w) for op in ("add", "remove")]
                order = ops[i % 4 :] + ops[: i % 4]
                calls = [(f"/api/groups/{op}", m) for op, m in order]
                await asyncio.gather(*(call(p, chat=group, user=owner, member=m) for p, m in calls))
                members = (await client.get("/api/groups/members", params={"chat": group})).json()
                for user in (v, w):
                    await check(user, members["members"])

        try:
            await asyncio.gather(rounds(), bystanders())
        finally:
            await redis.aclose()
        assert set(statuses) == {200}, statuses


async def _fill(store: RedisStore, group: str, sender: str, count: int) -> list[int]:
    """`count` messages of `sender` in `group`, in pipelines of 500; their send times."""
    times: list[int] = []
    while len(times) < count:
        batch = [GroupAppend(group, sender, f"m{len(times) + i}") for i in range(500)]
        posted = await store.execute(batch[: count - len(times)])
        times += [p.send_time for p in posted]
    return times


async def test_a_read_far_back_costs_the_same_whatever_the_groups_history(
    trio: Trio, redis: aioredis.Redis, store: RedisStore, report: Callable[[str], None]
) -> None:
    """Finding 2: a member sends one message, then marks the group read at its first
    message, again and again. That read's work (the commands Redis runs) is the same in a
    group of 500 messages and of 20,000; three such loops leave other clients served."""
    owner, v, honest = _names("u", 3)
    ran = []
    async with httpx.AsyncClient(base_url=trio.url(), timeout=10) as client:
        for size in (500, 20_000):
            group = f"#long{size}x{_RUN}{next(_ids)}"
            await store.one(CreateGroup(group, owner))
            await store.one(AddMember(group, owner, v, 5))
            first = (await _fill(store, group, owner, size))[0]
            await _ok(client, "/api/send", chat=group, sender=v, text="mine")

            async def read_far_back(group: str = group, first: int = first) -> None:
                done = await _ok(client, "/api/read", chat=group, user=v, send_time=first)
                assert done["read_until"] >= first

            ran.append(await _commands_run(redis, read_far_back))
        assert ran[0] == ran[1], ran
        assert ran[1] <= 20, ran
        stop = time.monotonic() + 2.0

        async def attack() -> int:
            n = 0
            while time.monotonic() < stop and n < 5000:
                await read_far_back()
                n += 1
            return n

        async def honest_pulls() -> list[float]:
            took: list[float] = []
            while time.monotonic() < stop and len(took) < 5000:
                started = time.monotonic()
                got = await client.get("/api/pull", params={"chat": f"{honest}:peer"})
                assert got.status_code == 200
                took.append(time.monotonic() - started)
            return took

        *attacks, took = await asyncio.gather(attack(), attack(), attack(), honest_pulls())
    took.sort()
    report(
        f"commands per far-back read: {ran[0]} (500 messages), {ran[1]} (20,000); "
        f"3 loops made {sum(attacks)} reads in 2 s, an honest client's pulls meanwhile: "
        f"p50 {took[len(took) // 2] * 1000:.1f} ms, max {took[-1] * 1000:.1f} ms"
    )


async def test_parked_long_polls_cost_nothing_per_send_and_woken_ones_share_a_read(
    trio: Trio, redis: aioredis.Redis, report: Callable[[str], None]
) -> None:
    """Finding 3: 200 long polls whose cursor no message reaches are not woken by the chat's
    sends (Redis runs about as many commands per send as with none parked); 200 polls at the
    chat's next cursor are all answered by one message, with one read between them."""
    gateway = trio.add_gateway(**GROUP_LIMITS, IM_HTTP_MAX_WAITING_PER_USER="1000")
    a, b = _names("p", 2)
    chat = f"{a}:{b}"
    async with httpx.AsyncClient(base_url=trio.url(), timeout=10) as client:
        sent = await _ok(client, "/api/send", chat=chat, sender=a, text="before")

        async def sends(count: int) -> None:
            for i in range(count):
                await _ok(client, "/api/send", chat=chat, sender=a, text=f"s{i}")

        group = f"#park{_RUN}{next(_ids)}"
        await _ok(client, "/api/groups", chat=group, user=a)

        async def group_sends(count: int) -> None:
            for i in range(count):
                await _ok(client, "/api/send", chat=group, sender=a, text=f"g{i}")

        alone = await _commands_run(redis, lambda: sends(10))
        group_alone = await _commands_run(redis, lambda: group_sends(10))
        conns = await asyncio.gather(*(Connection.open(gateway.port) for _ in range(200)))
        targets = [chat, "%23" + group[1:]]  # half on the chat, half on the group
        parked = [
            asyncio.create_task(
                c.get(f"/api/pull?chat={targets[i % 2]}&cursor={FAR}&wait_ms=30000")
            )
            for i, c in enumerate(conns)
        ]
        await asyncio.sleep(1.0)
        with_parked = await _commands_run(redis, lambda: sends(10))
        group_with_parked = await _commands_run(redis, lambda: group_sends(10))
        assert not [p for p in parked if p.done()]  # none was answered
        assert with_parked <= alone + 10, (alone, with_parked)
        assert group_with_parked <= group_alone + 10, (group_alone, group_with_parked)
        for p in parked:
            p.cancel()
        for c in conns:
            await c.close()
        newest = (await client.get("/api/pull", params={"chat": chat, "reverse": "true"})).json()
        cursor = newest["messages"][0]["send_time"] + 1
        conns = await asyncio.gather(*(Connection.open(gateway.port) for _ in range(200)))
        waiting = [
            asyncio.create_task(c.get(f"/api/pull?chat={chat}&cursor={cursor}&wait_ms=30000"))
            for c in conns
        ]
        await asyncio.sleep(1.0)
        before = await _calls(redis)
        await _ok(client, "/api/send", chat=chat, sender=b, text="wake")
        answers = await asyncio.wait_for(asyncio.gather(*waiting), 10)
        after = await _calls(redis)
        for c in conns:
            await c.close()
    texts = {tuple(m["text"] for m in x.json()["messages"]) for x in answers}  # type: ignore[index]
    assert texts == {("wake",)}
    reads = after.get("hvals", 0) - before.get("hvals", 0)
    assert reads <= 3, reads  # one shared read (HVALS + XRANGE) for the 200
    report(
        f"Redis commands per send: {alone / 10:.1f} with no poll parked, {with_parked / 10:.1f} "
        f"with 200 parked past any message ({sent['chat']}); 200 polls woken by one message "
        f"with {reads} read(s)"
    )


async def _big_groups(store: RedisStore, user: str, count: int, fillers: list[str]) -> list[str]:
    """`count` big groups (their owner and 3 fillers: 5 members > 3) holding `user`."""
    groups = [f"#big{_RUN}{next(_ids)}" for _ in range(count)]
    owner = fillers[0]
    ops: list[Any] = [CreateGroup(g, owner, 400) for g in groups]
    ops += [AddMember(g, owner, m, 5, 3, 400) for g in groups for m in (*fillers[1:], user)]
    for i in range(0, len(ops), 500):
        await store.execute(ops[i : i + 500])
    return groups


async def test_the_inbox_costs_its_page_not_the_users_big_groups(
    trio: Trio, redis: aioredis.Redis, store: RedisStore, report: Callable[[str], None]
) -> None:
    """Finding 4: a user in 300 big groups reads its inbox with as much work as a user in 10:
    before any group has a message (nothing to list), and once each has one (one read
    moves them all into the inbox; the reads after it cost a page of 10, as the user in 10
    groups pays). Every group, with messages or not, is in GET /api/groups, so the user can
    see and leave it."""
    few, many, *fillers = _names("i", 6)
    groups = {few: await _big_groups(store, few, 10, fillers), many: []}
    groups[many] = await _big_groups(store, many, 300, fillers)
    async with httpx.AsyncClient(base_url=trio.url(), timeout=30) as client:

        async def inbox(user: str) -> None:
            got = await client.get("/api/chats", params={"user": user})
            assert got.status_code == 200, got.text

        def cost(user: str) -> Awaitable[int]:
            return _commands_run(redis, functools.partial(inbox, user))

        empty = [await cost(few), await cost(many)]
        assert empty[1] == empty[0], empty
        listed = (await client.get("/api/groups", params={"user": many})).json()
        assert listed == {"user": many, "groups": sorted(groups[many])}
        for g in groups[few] + groups[many]:
            await store.one(GroupAppend(g, fillers[0], f"in {g}"))
        catch_up = [await cost(few), await cost(many)]
        steady = [await cost(few), await cost(many)]
        assert steady[1] <= steady[0] + 1, steady  # (+1: the row beyond the page, read too)
        page = (await client.get("/api/chats", params={"user": many, "limit": 5})).json()
        assert [c["chat"] for c in page["chats"]] == groups[many][::-1][:5]
        await _ok(client, "/api/groups/remove", chat=groups[many][0], user=many, member=many)
        listed = (await client.get("/api/groups", params={"user": many})).json()
        assert groups[many][0] not in listed["groups"]
    report(
        f"commands per inbox read in 10 and in 300 big groups: {empty} before any message; "
        f"{catch_up} for the read after a message in each (it catches up), {steady} after"
    )


async def test_no_answer_tells_a_non_member_whether_a_group_exists(trio: Trio) -> None:
    """Finding 5, with authentication on: send, read, add and remove by a user who is not a
    member answer the same status and code for a group that exists and one that does not."""
    owner, eve = _names("o", 2)
    group, missing = f"#exists{_RUN}{next(_ids)}", f"#missing{_RUN}{next(_ids)}"
    async with httpx.AsyncClient(base_url=trio.url(1), timeout=10) as client:
        made = await client.post("/api/groups", json={"chat": group}, headers=_bearer(owner))
        assert made.status_code == 200, made.text
        sent = await client.post(
            "/api/send", json={"chat": group, "text": "hi"}, headers=_bearer(owner)
        )
        assert sent.status_code == 200
        calls = [
            ("/api/send", {"text": "x"}),
            ("/api/read", {"send_time": sent.json()["send_time"]}),
            ("/api/groups/add", {"member": "zed"}),
            ("/api/groups/remove", {"member": eve}),
        ]
        for path, params in calls:
            answers = []
            for chat in (group, missing):
                got = await client.post(path, json={"chat": chat, **params}, headers=_bearer(eve))
                answers.append((got.status_code, got.json()["error"]))
            assert answers == [(403, "not_a_member")] * 2, (path, answers)


def _raw_token(body: str) -> str:
    """An HS256 token over a claims segment written by hand (numbers JSON cannot round-trip)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(b'{"alg":"HS256","typ":"JWT"}')
    signing = f"{head}.{b64(body.encode())}"
    mac = hmac.new(SECRET.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(mac)}"


@pytest.mark.parametrize(
    "exp",
    ["1" + "0" * 400, "1e400", '"9999999999"', "true", "-5", "NaN", "[9999999999]"],
    ids=["huge_integer", "huge_float", "string", "boolean", "negative", "nan", "array"],
)
async def test_a_time_claim_that_is_not_a_sane_number_is_a_401(trio: Trio, exp: str) -> None:
    """Finding 6: a validly signed token whose exp is not a JSON number from 0 to year 9999
    (an integer of 400 digits, a string, ...) is `401 unauthenticated`, never a 500; so are
    such an nbf and iat."""
    now = int(time.time())
    async with httpx.AsyncClient(base_url=trio.url(1), timeout=10) as client:
        for claim in ("exp", "nbf", "iat"):
            fields = {"sub": '"ann"', "exp": str(now + 600), claim: exp}
            body = "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"
            got = await client.get(
                "/api/chats", headers={"Authorization": f"Bearer {_raw_token(body)}"}
            )
            assert got.status_code == 401, (claim, got.text)
            assert got.json()["error"] == "unauthenticated"
    log = trio.gateways[1].log.read_text()
    assert "Traceback" not in log
    assert '"level": "ERROR"' not in log.replace('"level":"ERROR"', '"level": "ERROR"')


@pytest.mark.parametrize("auth", [False, True], ids=["by_address", "by_user"])
async def test_one_client_takes_only_its_share_of_the_long_poll_slots(
    trio: Trio, auth: bool
) -> None:
    """Finding 7: with 50 long-poll slots and a share of 10, one client (a user with
    authentication on, an address without) opening 30 polls gets 10 waiting and 20 `429
    too_many_long_polls`; another client's poll still waits, and is woken by its message."""
    gateway = trio.add_gateway(
        **GROUP_LIMITS,
        **(AUTH if auth else {}),
        IM_HTTP_MAX_WAITING="50",
        IM_HTTP_MAX_WAITING_PER_USER="10",
    )
    hog, other = _names("h", 2)
    hog_headers = _bearer(hog) if auth else {}
    other_headers = _bearer(other) if auth else {}
    conns = await asyncio.gather(*(Connection.open(gateway.port, "127.0.0.2") for _ in range(30)))
    polls = [
        asyncio.create_task(
            c.get(f"/api/pull?chat={hog}:x&cursor={FAR}&wait_ms=20000", hog_headers)
        )
        for c in conns
    ]
    await asyncio.sleep(1.0)
    refused = [p.result() for p in polls if p.done()]
    assert len(refused) == 20, len(refused)
    assert {(r.status, r.json()["error"]) for r in refused} == {(429, "too_many_long_polls")}  # type: ignore[index]
    assert all(r.headers["retry-after"] for r in refused)
    theirs = await Connection.open(gateway.port, "127.0.0.3")
    waiting = asyncio.create_task(
        theirs.get(f"/api/pull?chat={other}:y&wait_ms=20000", other_headers)
    )
    await asyncio.sleep(0.5)
    assert not waiting.done()
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{gateway.port}", timeout=10) as http:
        sent = await http.post(
            "/api/send",
            json={"chat": f"{other}:y", "sender": other, "text": "hi"},
            headers=other_headers,
        )
        assert sent.status_code == 200, sent.text
    woken = await asyncio.wait_for(waiting, 5)
    assert woken.status == 200
    assert [m["text"] for m in woken.json()["messages"]] == ["hi"]  # type: ignore[index]
    for p in polls:
        p.cancel()
    for c in (*conns, theirs):
        await c.close()
