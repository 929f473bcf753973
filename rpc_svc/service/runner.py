"""ChatService: answers a batch of calls, checking each call's rules before the store is
touched, with the valid calls' operations in one store round trip (a read of a read position
takes two, beside them)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, cast

from im_common.calls import (
    Call,
    ChatsCall,
    EditCall,
    GroupCall,
    PullCall,
    ReadCall,
    RecallCall,
    SendCall,
    SyncCall,
)
from rpc_svc.domain.access import check_actor
from rpc_svc.domain.errors import IMError
from rpc_svc.domain.limits import DEFAULT_MAX_GROUPS, DEFAULT_MAX_MEMBERS
from rpc_svc.domain.tokens import VERSION
from rpc_svc.domain.values import (
    Changed,
    Group,
    InboxPage,
    Page,
    ReadDone,
    Sent,
    SyncPage,
    UserGroupList,
)
from rpc_svc.service.changes import Erasers, Windows, plan_edit, plan_recall
from rpc_svc.service.chats import LongPolls, plan_pull, plan_send
from rpc_svc.service.groups import GroupLimits, plan_group
from rpc_svc.service.inbox import mark_read, plan_inbox
from rpc_svc.service.one_trip import OneTrip
from rpc_svc.service.planned import Planned
from rpc_svc.service.sync import SyncWaits, plan_sync
from rpc_svc.store.interface import Store

log = logging.getLogger(__name__)
Result = Sent | Page | InboxPage | ReadDone | Group | UserGroupList | SyncPage | Changed | IMError


class ChatService:
    """Every call of the contract, each rule checked before the store is touched.

    Each call may carry the acting user (the authenticated caller): then it may only send
    as, and read the inbox of, itself, and pull only chats it is a member of. With
    `require_user`, a call without one is refused (UserRequired). Sync tokens are signed
    with the key every instance shares (read from the store on the first sync).
    """

    def __init__(
        self,
        store: Store,
        max_text_bytes: int,
        max_waiting: int = 10_000,
        *,
        require_user: bool = False,
        max_group_members: int = DEFAULT_MAX_MEMBERS,
        group_fanout_max: int = 100,
        max_groups: int = DEFAULT_MAX_GROUPS,
        edit_window_s: int = 172_800,
        recall_window_s: int = 172_800,
        sync_token_version: int = VERSION,
    ) -> None:
        self._store = store
        self._max_text_bytes = max_text_bytes
        self._require_user = require_user
        self._limits = GroupLimits(max_group_members, group_fanout_max, max_groups)
        self._polls = LongPolls(store.wakeups, max_waiting)
        self.syncs = SyncWaits(store.wakeups, max_waiting, self._slots)  # waiting syncs
        self.sync_reads = OneTrip(store.execute)  # waiting syncs' reads, a trip a turn
        self._sync_key = b""  # read from the store on the first sync
        self._token_version = sync_token_version
        self._windows = Windows(edit_window_s, recall_window_s)
        self.erasers = Erasers(store)

    @property
    def waiting(self) -> int:
        """Long polls waiting now."""
        return self._polls.waiting

    async def run(self, calls: Sequence[Call | IMError]) -> list[Result]:
        """Answer each call, in order; the valid ones go to the store in one round trip.

        A call given as an IMError (it could not even be decoded) is answered with it. A
        call's failure is its own: whatever goes wrong with one (a bug included) answers
        that call with an error and none of the others.
        """
        results: list[Any] = [None] * len(calls)
        planned: list[tuple[int, Planned]] = []
        if not self._sync_key and any(isinstance(c, SyncCall) for c in calls):
            try:
                await self._key()
            except IMError as exc:  # those calls fail with it, the others go on
                calls = [exc if isinstance(c, SyncCall) else c for c in calls]
        reads: list[tuple[int, ReadCall]] = []
        for i, call in enumerate(calls):
            try:
                if isinstance(call, IMError):
                    raise call
                check_actor(call.actor, self._require_user)
                if isinstance(call, ReadCall):
                    reads.append((i, call))
                else:
                    planned.append((i, self._plan(call)))
            except IMError as exc:
                results[i] = exc
            except Exception as exc:  # a bug: this call's alone
                results[i] = _internal(call, exc)
        if planned or reads:
            done = await asyncio.gather(
                self._store.execute([p.op for _, p in planned]) if planned else _nothing(),
                *(self._read(call) for _, call in reads),
            )
            outcomes = cast(list[Any], done[0])
            answers = done[1:]
            for (i, _), answer in zip(reads, answers, strict=True):
                results[i] = answer
            for (i, plan), outcome in zip(planned, outcomes, strict=True):
                try:
                    results[i] = (
                        outcome
                        if isinstance(outcome, IMError)
                        else plan.answer(plan.context, plan.op, outcome)
                    )
                except Exception as exc:  # a bug: this call's alone
                    results[i] = _internal(calls[i], exc)
        waiting = [r.chat for r in results if isinstance(r, Changed) and r.erasing]
        if waiting:
            await self.erasers.note(waiting)
        return results

    def _plan(self, call: Call) -> Planned:
        if isinstance(call, SendCall):
            return plan_send(call, self._max_text_bytes)
        if isinstance(call, PullCall):
            return plan_pull(call)
        if isinstance(call, ChatsCall):
            return plan_inbox(call)
        if isinstance(call, SyncCall):
            return plan_sync(call, self._sync_key, False, self._token_version)
        if isinstance(call, EditCall):
            return plan_edit(call, self._max_text_bytes, self._windows)
        if isinstance(call, RecallCall):
            return plan_recall(call, self._windows)
        assert isinstance(call, GroupCall)
        return plan_group(call, self._limits)

    async def _read(self, call: ReadCall) -> Result:
        try:
            return await mark_read(self._store, call)
        except IMError as exc:
            return exc
        except Exception as exc:  # a bug: this call's alone
            return _internal(call, exc)

    async def answer(self, call: Call) -> Any:
        """The answer of one call; its error raised."""
        (result,) = await self.run([call])
        if isinstance(result, IMError):
            raise result
        return result

    async def send(self, call: SendCall) -> Sent:
        """Store one message and return where it landed; raise IMError otherwise."""
        sent: Sent = await self.answer(call)
        return sent

    async def pull(self, call: PullCall) -> Page:
        """One page of a chat, with the cursor of the next one; raise IMError otherwise."""
        page: Page = await self.answer(call)
        return page

    async def chats(self, call: ChatsCall) -> InboxPage:
        """One page of a user's chats; raise IMError otherwise."""
        page: InboxPage = await self.answer(call)
        return page

    async def mark_read(self, call: ReadCall) -> ReadDone:
        """Move a member's read position forward; raise IMError otherwise."""
        done: ReadDone = await self.answer(call)
        return done

    async def group(self, call: GroupCall) -> Group | UserGroupList:
        """A group call (create, add, remove, members, list); raise IMError otherwise."""
        group: Group | UserGroupList = await self.answer(call)
        return group

    async def pull_wait(self, call: PullCall, wait_ms: int) -> Page:
        """A forward pull that, when its page is empty, waits up to `wait_ms` for a message
        at or after the cursor (long polling); otherwise the same as pull."""
        return await self._polls.pull(call, wait_ms, self.pull)

    async def edit(self, call: EditCall) -> Changed:
        """Replace a message's text; raise IMError otherwise."""
        done: Changed = await self.answer(call)
        return done

    async def recall(self, call: RecallCall) -> Changed:
        """Recall a message (its text erased); raise IMError otherwise."""
        done: Changed = await self.answer(call)
        return done

    async def sync(self, call: SyncCall) -> SyncPage:
        """One page of what changed in a user's chats since a token; raise IMError otherwise."""
        page: SyncPage = await self.answer(call)
        return page

    async def sync_wait(self, call: SyncCall) -> SyncPage:
        """A sync that, when it has no event, waits up to `call.wait_ms` for one."""
        return await self.syncs.sync(call, self._read_sync, await self._key())

    async def _key(self) -> bytes:
        """The key sync tokens are signed with (read from the store once)."""
        if not self._sync_key:
            self._sync_key = await self._store.sync_key()
        return self._sync_key

    async def _read_sync(self, call: SyncCall, listing: bool) -> SyncPage:
        plan = plan_sync(call, self._sync_key, listing, self._token_version)
        outcome = await self.sync_reads.one(plan.op)
        result = (
            outcome if isinstance(outcome, IMError) else plan.answer(plan.context, plan.op, outcome)
        )
        if isinstance(result, IMError):
            raise result
        page: SyncPage = result
        return page

    def _slots(self, change: int) -> int:
        """Long polls and waiting syncs share one bound: add `change`, answer the count."""
        self._polls.waiting += change
        return self._polls.waiting

    async def ready(self) -> bool:
        """True when the store answers."""
        return await self._store.ping()


async def _nothing() -> list[Any]:
    return []


def _internal(what: object, exc: Exception) -> IMError:
    """A call that failed for a reason the service does not know (a bug): that call's
    error, logged with its kind (never its parameters: they may hold a message text)."""
    log.error("a %s call failed: %s", type(what).__name__, exc, exc_info=exc)
    return IMError(f"im-rpc could not answer this {type(what).__name__}")
