"""Builds and runs the gRPC server: IMService plus the standard health service."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import Any

from grpclib.health.check import ServiceCheck
from grpclib.health.service import Health
from grpclib.server import Server
from grpclib.utils import graceful_exit

from im_common.etcd import etcd_client
from im_common.gc_tuning import tune_gc
from rpc_svc.config import Settings
from rpc_svc.domain.errors import StoreError
from rpc_svc.edge.servicer import FailureLog, IMServicer, InFlight
from rpc_svc.metrics import registry, serve_metrics, stop_metrics
from rpc_svc.registry import Registration
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import LayoutError, RedisStore
from rpc_svc.store.cluster import ClusterStore
from rpc_svc.store.commands.plan import Plan
from rpc_svc.store.single import SingleRedisStore
from rpc_svc.store.wakeups import Wakeups

log = logging.getLogger(__name__)

ETCD_TIMEOUT_S = 2.0  # each etcd call's deadline: registration, keep-alives, deregistration


def build_services(
    settings: Settings,
    store: RedisStore,
    in_flight: InFlight,
    service: ChatService | None = None,
    failures: FailureLog | None = None,
) -> list[Any]:
    """IMService (its BatchStream, answered by `service`, or one made of `settings`, its
    failed calls noted in `failures`) and the standard health service, whose check pings
    Redis."""
    service = service or chat_service(settings, store)
    servicer = IMServicer(service, in_flight, failures)

    async def store_ok() -> bool:
        try:
            return await service.ready()
        except StoreError:
            return False

    check = ServiceCheck(store_ok, check_ttl=1.0, check_timeout=settings.redis_timeout_ms / 1000)
    return [servicer, Health({servicer: [check]})]


def chat_service(settings: Settings, store: RedisStore) -> ChatService:
    """The chat service `settings` describe, on `store`."""
    return ChatService(
        store,
        settings.max_text_bytes,
        settings.max_waiting,
        require_user=settings.require_user,
        max_group_members=settings.group_max_members,
        group_fanout_max=settings.group_fanout_max,
        max_groups=settings.user_max_groups,
        edit_window_s=settings.edit_window_s,
        recall_window_s=settings.recall_window_s,
        sync_token_version=settings.sync_token_version,
    )


def build_server(
    settings: Settings,
    store: RedisStore,
    in_flight: InFlight,
    service: ChatService | None = None,
    failures: FailureLog | None = None,
) -> Server:
    """A grpclib server with the services of `build_services`."""
    return Server(build_services(settings, store, in_flight, service, failures))


class _DrainingServer:
    """Stops in order: leave etcd, keep serving `grace_s` (gateways catch up), answer the
    waiting long polls, then close `server` once the calls in flight finish (or `drain_s`
    passes)."""

    def __init__(
        self,
        server: Server,
        in_flight: InFlight,
        drain_s: float,
        registration: Registration | None = None,
        grace_s: float = 0.0,
        wakeups: Wakeups | None = None,
    ) -> None:
        self._server = server
        self._in_flight = in_flight
        self._drain_s = drain_s
        self._registration = registration
        self._grace_s = grace_s
        self._wakeups = wakeups
        self._stopped = asyncio.Event()
        self._drain: asyncio.Task[None] | None = None

    def close(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._drain_then_close())

    async def _drain_then_close(self) -> None:
        if self._registration is not None:
            await self._registration.deregister()
            await asyncio.sleep(self._grace_s)
        if self._wakeups is not None:  # long polls answer now (with what they have)
            await self._wakeups.close()
        log.info("stopping: %d call(s) in flight", self._in_flight.count)
        if not await self._in_flight.wait_idle(self._drain_s):
            log.warning("drain timed out with %d call(s) in flight", self._in_flight.count)
        self._server.close()
        await self._server.wait_closed()
        self._stopped.set()

    async def wait_closed(self) -> None:
        await self._stopped.wait()


# a short chat's hash record beyond its text: stream ID, role and counts, or a group's
# count and sender (a member name)
RECORD_OVERHEAD = 128


async def _check_compact_records(store: RedisStore, max_text_bytes: int) -> None:
    """Log whether Redis keeps short chats' hashes compact for the longest text allowed."""
    needed = max_text_bytes + RECORD_OVERHEAD
    limit = await store.compact_record_limit()
    if limit is None:
        log.info(
            "could not read Redis's hash-max-listpack-value: a short chat stays compact only "
            "when it is at least %d (IM_MAX_TEXT_BYTES + %d)",
            needed,
            RECORD_OVERHEAD,
        )
    elif limit < needed:
        log.warning(
            "Redis's hash-max-listpack-value is %d: a short chat holding a record longer than "
            "that takes more memory (set it to %d: IM_MAX_TEXT_BYTES + %d)",
            limit,
            needed,
            RECORD_OVERHEAD,
        )


def open_store(
    url: str,
    *,
    max_connections: int,
    timeout_s: float,
    idempotency_ttl_s: int,
    retry_key_ttl_s: int = 60,
    cluster: bool = False,
    wait_replicas: int = 0,
    wait_timeout_ms: int = 100,
    short_chat_messages: int = 32,
    sync_retain: int = 10_000,
    sync_idle_s: int = 30 * 86_400,
) -> RedisStore:
    """A store on the Redis at `url` (with `cluster`, a seed node of a Redis Cluster), its
    connections made on first use. With `wait_replicas`, a write is acknowledged only once
    that many replicas have it (WAIT, up to `wait_timeout_ms`). A chat keeps its first
    `short_chat_messages` - 1 messages in a hash, then moves them into a stream (0: streams
    only). A user's sync feed keeps at least its `sync_retain` newest records, and goes
    after `sync_idle_s` without a sync."""
    plan = Plan(
        ttl_us=idempotency_ttl_s * 1_000_000,
        retry_ttl_us=retry_key_ttl_s * 1_000_000,
        short_max=short_chat_messages,
        user_side=not cluster,
        sync_retain=sync_retain,
        sync_idle_ms=sync_idle_s * 1000,
    )
    backend = ClusterStore if cluster else SingleRedisStore
    return backend.from_url(
        url,
        plan,
        max_connections,
        timeout_s,
        wait_replicas=wait_replicas,
        wait_timeout_ms=wait_timeout_ms,
    )


def open_settings_store(settings: Settings) -> RedisStore:
    """The store `settings` name (its connections made on first use)."""
    return open_store(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout_s=settings.redis_timeout_ms / 1000,
        idempotency_ttl_s=settings.idempotency_ttl_s,
        retry_key_ttl_s=settings.retry_key_ttl_s,
        cluster=settings.redis_cluster,
        wait_replicas=settings.redis_wait_replicas,
        wait_timeout_ms=settings.redis_wait_timeout_ms,
        short_chat_messages=settings.short_chat_messages,
        sync_retain=settings.sync_retain,
        sync_idle_s=settings.sync_idle_s,
    )


async def _layout_known(store: RedisStore, attempts: int = 5) -> bool:
    """Whether Redis holds this code's store layout (an empty Redis is marked with it):
    False (logged) when it holds another. Redis not answering yet is tried again once a
    second, `attempts` times, then im-rpc starts all the same (logged)."""
    for attempt in range(attempts):
        try:
            await store.check_layout()
            return True
        except LayoutError as exc:
            log.error("%s", exc)
            return False
        except StoreError as exc:
            if attempt == attempts - 1:
                log.warning("could not check Redis's store layout at start: %s", exc)
                return True
            await asyncio.sleep(1.0)
    return True


async def serve(settings: Settings) -> None:
    """Run im-rpc until SIGTERM or SIGINT, then drain and close everything it opened;
    SystemExit at once against a Redis of another layout."""
    async with AsyncExitStack() as stack:
        store = open_settings_store(settings)
        stack.push_async_callback(store.close)
        if not await _layout_known(store):
            raise SystemExit(2)
        await _check_compact_records(store, settings.max_text_bytes)
        store.wakeups.start()
        in_flight = InFlight()
        service = chat_service(settings, store)
        service.erasers.sweep()  # recalled texts an im-rpc that stopped left unerased
        stack.push_async_callback(service.erasers.close)
        failures = FailureLog()
        server = build_server(settings, store, in_flight, service, failures)
        if settings.metrics_port:
            exported = registry(service, in_flight, store.wakeups, failures, settings.max_waiting)
            try:
                metrics = serve_metrics(settings.host, settings.metrics_port, exported)
            except OSError as exc:
                log.error("cannot serve metrics on port %d: %s", settings.metrics_port, exc)
                raise SystemExit(2) from exc
            stack.push_async_callback(stop_metrics, metrics)
            log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
        registration = None
        if settings.etcd_url:
            etcd = etcd_client(settings.etcd_url, timeout_s=ETCD_TIMEOUT_S)
            stack.push_async_callback(etcd.close)
            registration = Registration(
                etcd,
                settings.etcd_prefix,
                settings.advertised_addr,
                settings.etcd_lease_ttl_s,
                timeout_s=ETCD_TIMEOUT_S,
            )
        draining = _DrainingServer(
            server,
            in_flight,
            settings.drain_s,
            registration,
            settings.deregister_grace_s,
            store.wakeups,
        )
        with graceful_exit([draining]):
            await server.start(settings.host, settings.port)
            tune_gc(settings.gc_threshold)
            log.info("im-rpc listening on %s:%d", settings.host, settings.port)
            if registration is not None:
                registration.start()
            await draining.wait_closed()
        log.info("im-rpc stopped")
