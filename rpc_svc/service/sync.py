"""Sync: what changed in all of a user's chats since a token, and the long poll that waits
for the next change. Each call's rules checked and its store operation planned (a page of
the user's sync feed, rpc_svc.store: one record per event, written where the event is
stored); each outcome turned into events as clients see them and the next token."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import NamedTuple

import msgspec

from im_common.calls import SyncCall
from rpc_svc.domain.access import check_same_user
from rpc_svc.domain.errors import IMError, Overloaded, SyncLostWrites, SyncReset
from rpc_svc.domain.names import check_user
from rpc_svc.domain.paging import show_change
from rpc_svc.domain.rules import check_wait_ms, sync_limit
from rpc_svc.domain.tokens import VERSION, SyncToken, decode, encode
from rpc_svc.domain.values import FeedEvent, FeedPage, Message, SyncPage
from rpc_svc.service.planned import Planned
from rpc_svc.store.keys import change_channel, sync_channel, wake_channel
from rpc_svc.store.ops import SyncFeed
from rpc_svc.store.wakeups import Wakeups

POLL_S = 0.5  # a waiting sync's re-read interval while wake-ups cannot be watched
RACED_S = 0.02  # its first re-read of an event announced but not readable yet (doubling)
# how long a quiet answer is kept for its token's next wait: a client's next long poll comes
# a round trip or two after its answer; one that comes later (or to another im-rpc, or
# never) reads once, as any first wait does
QUIET_S = 10.0
# how old the read whose answer a wait gives again may be: an idle user's waits still read
# now and then (each read renews the feed's lifetime, IM_SYNC_IDLE_S, which a wait that
# reads nothing would let run out while its client syncs)
REREAD_S = 300.0


def plan_sync(call: SyncCall, key: bytes, listing: bool = False, version: int = VERSION) -> Planned:
    """The store operation of a sync (`listing`: with the user's big groups, for a wait),
    whose answer's token is made in `version`; InvalidArgument or Forbidden first."""
    check_user(call.user)
    check_same_user(call.actor, call.user, "user")
    limit = sync_limit(call.limit)
    if not call.since:
        op = SyncFeed(call.user, "", 0, 0, limit, secrets.token_hex(8))
    else:
        token = decode(key, call.user, call.since)
        op = SyncFeed(
            call.user, token.epoch, token.position, token.place, limit, "", listing, token.check
        )
    return Planned(op, _answer, (key, version))


def _answer(signing: tuple[bytes, int], op: SyncFeed, page: FeedPage) -> SyncPage | IMError:
    if page.status == "reset":
        return SyncReset(
            "since: the token is older than the events kept (or the feed was dropped after "
            "a long idle time); start again with a sync without since"
        )
    if page.status == "lost":
        return SyncLostWrites(
            "since: the store lost events this token had seen (a failover, or a restart "
            "that lost its newest writes); start again with a sync without since"
        )
    token = SyncToken(page.epoch, page.position, page.place, page.check)
    key, version = signing
    return SyncPage(
        _public(page.events), encode(key, op.user, token, version), page.more, page.watch
    )


def _public(events: Iterable[FeedEvent]) -> list[dict[str, object]]:
    """The events as clients see them (one loop: a sync's hot path)."""
    out: list[dict[str, object]] = []
    append = out.append
    for kind, chat, number, entry in events:
        if entry is None:
            if kind == "read":
                append({"type": "read", "chat": chat, "read_until": number})
            elif kind == "recall":
                append({"type": "recall", "chat": chat, "send_time": number})
            else:
                append({"type": kind, "chat": chat})
            continue
        send_time, who, text, change = entry
        if isinstance(who, str):  # (a GroupEntry's sender; an Entry's is its role)
            sender = who
        else:
            first, _, second = chat.partition(":")
            sender = second if who else first
        message: Message = {"chat": chat, "text": text, "sender": sender, "send_time": send_time}
        show_change(message, change)
        append({"type": kind, "chat": chat, "message": message})
    return out


def _channels(
    user: str, position: int, groups: Iterable[tuple[str, tuple[int, int]]]
) -> list[tuple[str, int]]:
    """What a wait watches, each channel with its cursor: the user's sync channel past
    `position`, and each of its big `groups`' two channels past the message and the change
    log's record it has had."""
    channels = [(sync_channel(user), position + 1)]
    for group, (at, changes) in groups:
        channels += [(wake_channel(group), at + 1), (change_channel(group), changes + 1)]
    return channels


class _Quiet(NamedTuple):
    """What a wait's read left: the user's big groups and their positions (as its page
    listed them), the subscription of each channel the next wait watches, in place before
    the page was read (Wakeups.subscription), and when that page was read (monotonic s)."""

    watch: tuple[tuple[str, int, int], ...]
    subscriptions: dict[str, object]
    read_at: float


class SyncWaits:
    """Syncs that wait for the next event when their page is empty (wait_ms).

    A waiting sync watches its user's sync channel (a record appended to its feed: a
    message, edit or recall of a 1:1 chat or small group, a read, a join or leave) and the
    two channels of each of the user's big groups (its messages, its edits and recalls:
    written to no member's feed, the next sync reads them), each from the position the sync
    has reached, so only an event this sync would answer wakes it. The watches are in place
    before the page is read, so none is missed; a user's big groups seen first in a page are
    watched and the page read again.
    A wait that comes back with the token the last answer gave (its client's next long poll)
    does not read again when nothing can have happened since that answer's read: each
    channel it watches was subscribed to before that read, is so still, and has heard
    nothing at or past its cursor (the quiet answers are kept by user and token for
    `quiet_s`, at most `max_waiting` of them). Nor does a wait whose time is up read again
    when nothing can have happened since its own last read: it answers that read's empty
    page (so a user's idle syncs cost no read per `wait_ms`, and waits that all end at
    once, as after a restart, are no herd of reads). Either way an answer is given again
    only while the read it comes from is less than `reread_s` old.
    Waiting counts against the long polls' bound (`slots`: LongPolls' counter)."""

    def __init__(self, wakeups: Wakeups, max_waiting: int, slots: Callable[[int], int]) -> None:
        self._wakeups = wakeups
        self._max_waiting = max_waiting
        self._slots = slots  # adds its argument to the long polls waiting; answers the count
        # (user, token): when it was kept, the answer it was; the oldest kept first
        self._quiet: OrderedDict[tuple[str, str], tuple[float, _Quiet]] = OrderedDict()
        self.quiet_s = QUIET_S
        self.reread_s = REREAD_S
        # reads not made (for the tests and the curious): at a wait's start, from the answer
        # kept for its token; at its end, its own last read's page given again
        self.skipped_at_start = 0
        self.skipped_at_end = 0

    async def sync(
        self, call: SyncCall, read: Callable[[SyncCall, bool], Awaitable[SyncPage]], key: bytes
    ) -> SyncPage:
        """The page of `call` (`read` reads it; True: with the user's big groups), waiting up
        to `call.wait_ms` while it is empty."""
        check_wait_ms(call.wait_ms)
        if call.wait_ms == 0 or not call.since:
            return await read(call, False)
        deadline = time.monotonic() + call.wait_ms / 1000
        token = decode(key, call.user, call.since)
        kept = self._quiet.pop((call.user, call.since), None)
        quiet = kept[1] if kept else None
        watched = {g: (at, c) for g, at, c in quiet.watch} if quiet else {}
        again = msgspec.structs.replace(call, wait_ms=0)
        raced = 0
        last: tuple[SyncPage, _Quiet] | None = None  # the last read's empty page
        while True:
            async with contextlib.AsyncExitStack() as watches:
                channels = _channels(call.user, token.position, watched.items())
                woken = [
                    await watches.enter_async_context(self._wakeups.watch_channel(c, cursor))
                    for c, cursor in channels
                ]
                left = deadline - time.monotonic()
                if quiet is not None and left > 0 and self._still(quiet, channels):
                    last = (SyncPage([], call.since, False, quiet.watch), quiet)  # (its token)
                    quiet = None
                    self.skipped_at_start += 1
                    await self._wait(woken, left)
                    continue
                if last is not None and left <= 0 and self._still(last[1], channels):
                    self.skipped_at_end += 1  # (its time is up, and nothing came since)
                    self._keep(call.user, last[0], last[1].subscriptions, last[1].read_at)
                    return last[0]
                quiet = None
                before = {c: self._wakeups.subscription(c) for c, _ in channels}
                read_at = time.monotonic()
                page = await read(again, True)
                left = deadline - time.monotonic()
                if page.events or left <= 0 or self._wakeups.closed:
                    self._keep(call.user, page, before, read_at)
                    return page
                news = {g: (at, c) for g, at, c in page.watch if watched.get(g) != (at, c)}
                if news:  # watch them, then read again: nothing between is missed
                    watched.update(news)
                    continue
                last = (page, _Quiet(page.watch, before, read_at))
                if any(self._wakeups.heard(c) >= cursor for c, cursor in channels):
                    # announced, not readable yet (a cluster notes a big group's message
                    # in a step after the announcement): read again shortly
                    left, raced = min(left, RACED_S * 2**raced), raced + 1
                await self._wait(woken, left)

    def _still(self, quiet: _Quiet, channels: list[tuple[str, int]]) -> bool:
        """Whether nothing a wait on `channels` would answer happened since `quiet`'s read
        (and that read is less than `reread_s` old)."""
        if time.monotonic() - quiet.read_at >= self.reread_s:
            return False
        for channel, cursor in channels:
            then = quiet.subscriptions.get(channel)
            if then is None or self._wakeups.subscription(channel) is not then:
                return False
            if self._wakeups.heard(channel) >= cursor:
                return False
        return True

    def _keep(
        self, user: str, page: SyncPage, before: dict[str, object | None], read_at: float
    ) -> None:
        """Keep a page that left nothing to read (read at `read_at`), for its token's next
        wait: when every channel that wait watches was subscribed to before the page was
        read."""
        if page.has_more:
            return
        wanted = _channels(user, 0, ((g, (at, c)) for g, at, c in page.watch))
        subscriptions = {c: before.get(c) for c, _ in wanted}
        if any(s is None for s in subscriptions.values()):
            return
        now = time.monotonic()
        self._drop_quiet(now - self.quiet_s)
        if len(self._quiet) >= self._max_waiting:
            self._quiet.popitem(last=False)  # (the oldest)
        self._quiet[(user, page.next)] = (now, _Quiet(page.watch, subscriptions, read_at))
        self._quiet.move_to_end((user, page.next))

    def _drop_quiet(self, before: float) -> None:
        """Drop the quiet answers kept before `before` (whose next wait went elsewhere, or
        never came: each would hold its subscriptions until `max_waiting` newer ones pushed
        it out)."""
        while self._quiet:
            kept_at, _ = next(iter(self._quiet.values()))
            if kept_at >= before:
                return
            self._quiet.popitem(last=False)

    @property
    def quiet_kept(self) -> int:
        """The quiet answers kept now (for the tests and the curious)."""
        return len(self._quiet)

    async def _wait(self, woken: list[asyncio.Future[float] | None], left: float) -> None:
        if self._slots(0) >= self._max_waiting:
            raise Overloaded(f"{self._slots(0)} long polls wait here already; retry later")
        self._slots(1)
        try:
            futures = [f for f in woken if f is not None]
            if len(futures) < len(woken):  # a watch not in place: read again shortly
                left = min(left, POLL_S)
            if futures:
                await asyncio.wait(futures, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(left)
        finally:
            self._slots(-1)
