"""The gateway's Sanic application, built by `create_app(settings)`."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from sanic import Sanic
from sanic.config import Config

from http_svc import metrics as metrics_mod
from http_svc.config import Settings, split_addr
from http_svc.errors import JsonErrorHandler
from http_svc.metrics import Metrics
from http_svc.openapi import build_openapi
from http_svc.routes import bp
from http_svc.rpc_client import RpcClient


@dataclass
class AppContext:
    """What the handlers share: settings, the im-rpc client (per worker), metrics."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    openapi: bytes = b""
    rpc: RpcClient = field(init=False)


def create_app(settings: Settings, name: str = "im_http") -> Sanic[Config, AppContext]:
    """A gateway app; its im-rpc channels open at server start and close at stop."""
    ctx = AppContext(settings, openapi=orjson.dumps(build_openapi(settings.max_body_bytes)))
    app: Sanic[Config, AppContext] = Sanic(
        name,
        ctx=ctx,
        error_handler=JsonErrorHandler(),
        dumps=orjson.dumps,
        loads=orjson.loads,
        configure_logging=False,
    )
    app.config.update(
        REQUEST_MAX_SIZE=settings.max_body_bytes,
        REQUEST_TIMEOUT=settings.request_timeout_s,
        KEEP_ALIVE_TIMEOUT=settings.keepalive_s,
        GRACEFUL_SHUTDOWN_TIMEOUT=settings.drain_s,
        USE_UVLOOP=settings.uvloop,
        ACCESS_LOG=False,
        MOTD=False,
        FALLBACK_ERROR_FORMAT="json",
    )
    app.blueprint(bp)
    metrics_mod.install(app, ctx.metrics)

    @app.before_server_start
    async def open_rpc(app: Sanic[Config, AppContext]) -> None:
        app.ctx.rpc = RpcClient(
            [split_addr(a) for a in settings.rpc_addrs],
            settings.rpc_channels,
            settings.rpc_timeout_ms / 1000,
            mode=settings.rpc_mode,
            batch_max=settings.rpc_batch_max,
            observe=app.ctx.metrics.observe_rpc,
            observe_batch=app.ctx.metrics.batch_calls.observe,
        )

    @app.after_server_stop
    async def close_rpc(app: Sanic[Config, AppContext]) -> None:
        app.ctx.rpc.close()

    return app
