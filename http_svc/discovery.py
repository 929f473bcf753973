"""The gateway's view of the im-rpc instances registered in etcd.

Reads the prefix, hands the addresses to `on_change`, then follows the prefix with a
watch from the revision it read. When etcd cannot be reached the last known set
stays in use; the reader retries every `retry_s` and, once back, reads the whole
prefix again (changes missed meanwhile are not lost) before watching anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aetcd

from im_common.etcd import ETCD_ERRORS
from im_common.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Discovery:
    """Follows `<prefix>*` in etcd and reports the set of addresses on every change."""

    def __init__(
        self,
        client: aetcd.Client,
        prefix: str,
        on_change: Callable[[list[str]], None],
        retry_s: float = 0.5,
    ) -> None:
        self._client = client
        self._prefix = prefix.encode()
        self._on_change = on_change
        self._retry_s = retry_s
        self._addrs: dict[bytes, str] = {}
        self._task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()

    async def start(self, wait_s: float) -> None:
        """Start following etcd; wait up to `wait_s` for the first read."""
        self._task = asyncio.create_task(self._follow())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.loaded.wait(), wait_s)
        if not self.loaded.is_set():
            log.warning("etcd not read within %.1fs: no im-rpc instance known yet", wait_s)

    async def close(self) -> None:
        """Stop following etcd."""
        await cancel_and_wait(self._task)

    async def _follow(self) -> None:
        failing = False
        while True:
            try:
                revision = await self._read()
                if failing:
                    log.info("etcd reachable again: %d im-rpc instance(s)", len(self._addrs))
                failing = False
                watch = await self._client.watch_prefix(self._prefix, start_revision=revision + 1)
                async for event in watch:
                    if event.kind == aetcd.EventKind.PUT:
                        self._addrs[event.kv.key] = event.kv.value.decode()
                    else:
                        self._addrs.pop(event.kv.key, None)
                    self._publish()
            except ETCD_ERRORS as exc:
                if not failing:
                    known = len(self._addrs)
                    log.warning("etcd unreachable, keeping %d instance(s): %s", known, exc)
                failing = True
            await asyncio.sleep(self._retry_s)

    async def _read(self) -> int:
        reply = await self._client.get_prefix(self._prefix)
        self._addrs = {kv.key: kv.value.decode() for kv in reply}
        self._publish()
        self.loaded.set()
        return int(reply.header.revision)

    def _publish(self) -> None:
        self._on_change(sorted(set(self._addrs.values())))
