"""Edit and recall: each call's rules checked and its store operation planned (the change
stored beside the message, which keeps its place; rpc_svc.store: the changes set, the members'
sync feeds, a big group's change log); each outcome turned into the call's answer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from im_common.calls import EditCall, RecallCall
from im_common.tasks import cancel_and_wait
from rpc_svc.domain.access import check_same_user
from rpc_svc.domain.errors import IMError
from rpc_svc.domain.names import check_group, check_name, is_group, parse_chat
from rpc_svc.domain.refusals import refusal
from rpc_svc.domain.rules import check_cursor, check_text
from rpc_svc.domain.values import Changed
from rpc_svc.service.planned import Planned
from rpc_svc.store.interface import Store
from rpc_svc.store.ops import Change, Erasing
from rpc_svc.store.ops import Changed as StoreChanged

log = logging.getLogger(__name__)


class Windows:
    """How long after its send time a message may be edited and recalled by its sender (µs;
    0: any time)."""

    def __init__(self, edit_s: int, recall_s: int) -> None:
        self.edit_us = edit_s * 1_000_000
        self.recall_us = recall_s * 1_000_000


def plan_edit(call: EditCall, max_text_bytes: int, windows: Windows) -> Planned:
    """The store operation of an edit; InvalidArgument or Forbidden first."""
    check_same_user(call.actor, call.sender, "sender")
    check_cursor(call.send_time, "send_time")
    check_text(call.text, max_text_bytes)
    if is_group(call.chat):
        check_group(call.chat)
        check_name(call.sender, "sender")
        op = Change(call.chat, call.sender, call.send_time, "e", call.text, windows.edit_us,
                    bool(call.actor))  # fmt: skip
        return Planned(op, _answer, call.sender)
    chat = parse_chat(call.chat)
    role = chat.role_of(call.sender)
    op = Change(chat.name, str(role), call.send_time, "e", call.text, windows.edit_us)
    return Planned(op, _answer, call.sender)


def plan_recall(call: RecallCall, windows: Windows) -> Planned:
    """The store operation of a recall; InvalidArgument or Forbidden first."""
    check_same_user(call.actor, call.user, "user")
    check_cursor(call.send_time, "send_time")
    if is_group(call.chat):
        check_group(call.chat)
        check_name(call.user, "user")
        op = Change(call.chat, call.user, call.send_time, "r", "", windows.recall_us,
                    bool(call.actor))  # fmt: skip
        return Planned(op, _answer, call.user)
    chat = parse_chat(call.chat)
    role = chat.role_of(call.user, "user")
    op = Change(chat.name, str(role), call.send_time, "r", "", windows.recall_us)
    return Planned(op, _answer, call.user)


def _answer(who: str, op: Change, outcome: Any) -> Any:
    if isinstance(outcome, int):
        return refusal(outcome, op.chat, who, op.send_time, op.kind)
    assert isinstance(outcome, StoreChanged)
    return Changed(op.chat, op.send_time, outcome.at, op.kind == "r", outcome.erasing)


class Erasers:
    """Erase recalled texts that wait in a chat's stream, in the background (a recall is
    answered once its text is hidden everywhere: the store's copy of the stream without it
    follows, at most ERASE_STEP_ENTRIES entries a round trip, `delay_s` after the recall, so
    that the recalls of a chat within that time share one copy; one chat at a time, so that
    other clients' commands wait for one erasure's script at most). Each chat is noted in the
    store first, so that what an im-rpc that stopped left is finished by any other: each
    one looks every `sweep_s` seconds."""

    def __init__(self, store: Store, sweep_s: float = 30.0, delay_s: float = 1.0) -> None:
        self._store = store
        self._sweep_s = sweep_s
        self._delay_s = delay_s
        self._one_at_a_time = asyncio.Semaphore(1)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def note(self, chats: list[str]) -> None:
        """Note `chats` in the store (before their recalls are answered: one round trip for
        them all), then erase; a StoreError raised when one could not be noted."""
        for outcome in await self._store.execute([Erasing(chat) for chat in chats]):
            if isinstance(outcome, IMError):
                raise outcome
        for chat in chats:
            self.start(chat)

    def start(self, chat: str) -> None:
        """Erase `chat`'s waiting texts unless that runs here already."""
        if chat in self._running:
            return
        task = asyncio.create_task(self._erase(chat))
        self._running[chat] = task
        task.add_done_callback(lambda _: self._running.pop(chat, None))

    async def _erase(self, chat: str) -> None:
        await asyncio.sleep(self._delay_s)
        for _ in range(5):  # a recall meanwhile: once more
            try:
                async with self._one_at_a_time:
                    erased = await self._store.erase(chat)
                if erased:
                    return
            except IMError as exc:
                log.warning("erasing recalled texts of a chat failed (retried later): %s", exc)
                return
            except Exception:  # a bug: logged, the chat stays noted for the next sweep
                log.exception("erasing recalled texts of a chat failed")
                return
            await asyncio.sleep(self._delay_s)

    def sweep(self) -> None:
        """Look for noted chats every `sweep_s` seconds, in the background (once)."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            try:
                for chat in cast(list[str], await self._store.one(Erasing())):
                    self.start(chat)
            except IMError as exc:
                log.warning("could not read the chats with texts to erase: %s", exc)
            await asyncio.sleep(self._sweep_s)

    async def close(self) -> None:
        """Stop sweeping and wait (briefly) for the erasures under way."""
        await cancel_and_wait(self._sweeper)
        if self._running:
            await asyncio.wait(set(self._running.values()), timeout=5)
