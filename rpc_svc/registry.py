"""Registration of one im-rpc instance in etcd, under a lease kept alive while it runs.

The key disappears by itself `ttl_s` after the process dies (SIGKILL, crash); on a
clean stop `deregister` deletes it at once, before the server drains. While etcd is
unreachable the task keeps retrying; a lease that expired meanwhile is replaced and
the key written again.

Each keep-alive is one LeaseKeepAlive call of its own, read once and cancelled (`_refresh`).
aetcd's `Lease.refresh` returns from inside that call's reply loop and leaves the reply
iterator unfinished; the collector then hands the iterator to the event loop to close, which
keeps the call alive past that collection and into the collector's older generations. Under
im-rpc's IM_GC_THRESHOLD those calls piled up for many minutes (one every third of the 5 s
lease: im-rpc grew 0.4-0.7 MB a minute in a soak).
"""

from __future__ import annotations

import asyncio
import logging

import aetcd
from aetcd import rpc

from im_common.etcd import ETCD_ERRORS, instance_key
from im_common.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Registration:
    """Keeps `<prefix><addr>` in etcd while running; `deregister` removes it."""

    def __init__(
        self, client: aetcd.Client, prefix: str, addr: str, ttl_s: int, timeout_s: float = 2.0
    ) -> None:
        self._client = client
        self._key = instance_key(prefix, addr)
        self._addr = addr
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._lease: aetcd.Lease | None = None
        self._task: asyncio.Task[None] | None = None
        self.registered = asyncio.Event()

    def start(self) -> None:
        """Register in the background, then keep the lease alive."""
        self._task = asyncio.create_task(self._keep_alive())

    async def deregister(self, timeout_s: float = 2.0) -> None:
        """Stop refreshing, delete the key and revoke the lease (best effort within timeout_s)."""
        await cancel_and_wait(self._task)
        lease, self._lease = self._lease, None
        self.registered.clear()
        try:
            async with asyncio.timeout(timeout_s):
                await self._client.delete(self._key)
                if lease is not None:
                    await lease.revoke()
            log.info("deregistered %s from etcd", self._addr)
        except ETCD_ERRORS as exc:
            log.warning("could not deregister from etcd (the lease will expire): %s", exc)

    async def _keep_alive(self) -> None:
        interval = self._ttl_s / 3
        failing = False
        while True:
            try:
                if self._lease is None or await self._refresh(self._lease) <= 0:
                    await self._register()
                if failing:
                    log.info("etcd reachable again; %s is registered", self._addr)
                failing = False
                await asyncio.sleep(interval)
            except ETCD_ERRORS as exc:
                if not failing:
                    log.warning("etcd unreachable, retrying every %.1fs: %s", interval, exc)
                failing = True
                await asyncio.sleep(min(interval, 1.0))

    async def _refresh(self, lease: aetcd.Lease) -> int:
        """Keep `lease` alive once: its TTL now (0: expired), on a call closed at once."""
        await self._client.connect()
        call = self._client.leasestub.LeaseKeepAlive(
            iter([rpc.LeaseKeepAliveRequest(ID=lease.id)]),
            timeout=self._timeout_s,
            metadata=self._client.metadata,
        )
        try:
            reply = await call.read()  # (not `async for`: its iterator would be left open)
            return int(getattr(reply, "TTL", 0))  # (grpc.aio's EOF: ended unanswered)
        except rpc.AioRpcError as exc:
            raise ConnectionError(f"etcd lease keep-alive: {exc.code().name}") from exc
        finally:
            call.cancel()

    async def _register(self) -> None:
        self._lease = await self._client.lease(self._ttl_s)
        await self._client.put(self._key, self._addr.encode(), lease=self._lease)
        self.registered.set()
        log.info("registered %s in etcd (lease %ds)", self._addr, self._ttl_s)
