"""The gateway and im-rpc in the test's own process and event loop, on real sockets and a
real Redis: the same factories and servers the processes run (create_app with Sanic's HTTP
protocol, build_server with grpclib), only not in processes of their own. Mutation testing
sees code only in the test's process, so the API tests run against this stack too."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from devtools.procs import HOST, listening_socket
from http_svc.app import create_app
from http_svc.config import Settings as HttpSettings
from http_svc.protocol import WholeRequestTimeout
from rpc_svc.config import Settings as RpcSettings
from rpc_svc.edge.servicer import InFlight
from rpc_svc.server import build_server, open_store

_apps = itertools.count()


@asynccontextmanager
async def in_process_stack(
    redis_url: str,
    gateway: Mapping[str, Any] | None = None,
    rpc_fields: Mapping[str, Any] | None = None,
) -> AsyncIterator[str]:
    """im-rpc on `redis_url` and a gateway calling it (`gateway`, `rpc_fields`: their Settings
    fields), both started in this event loop; the gateway's base URL. Both stop on exit."""
    rpc_settings = RpcSettings(redis_url=redis_url, **(rpc_fields or {}))
    store = open_store(
        redis_url,
        max_connections=16,
        timeout_s=rpc_settings.redis_timeout_ms / 1000,
        idempotency_ttl_s=rpc_settings.idempotency_ttl_s,
        retry_key_ttl_s=rpc_settings.retry_key_ttl_s,
    )
    store.wakeups.start()
    rpc = build_server(rpc_settings, store, InFlight())
    rpc_sock, http_sock = listening_socket(), listening_socket()
    rpc_port, http_port = rpc_sock.getsockname()[1], http_sock.getsockname()[1]
    await rpc.start(sock=rpc_sock)
    settings = HttpSettings(
        rpc_addrs=(f"{HOST}:{rpc_port}",), port=http_port, uvloop=False, **(gateway or {})
    )
    app = create_app(settings, name=f"im_http_in_process_{next(_apps)}")
    app.config.TOUCHUP = False  # it rewrites Sanic's own methods once per process, not per app
    server = await app.create_server(
        sock=http_sock,
        return_asyncio_server=True,
        protocol=WholeRequestTimeout,
        access_log=False,
    )
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield f"http://{HOST}:{http_port}"
    finally:
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()
        rpc.close()
        await rpc.wait_closed()
        await store.close()
