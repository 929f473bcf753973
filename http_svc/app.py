"""The gateway's Sanic application, built by `create_app(settings)`."""

from __future__ import annotations

from dataclasses import dataclass, field

import aetcd
import orjson
from sanic import Sanic
from sanic.config import Config

from http_svc import request_log
from http_svc.auth import Authenticator
from http_svc.auth_keys import KeyReloader, load_keys
from http_svc.config import Settings
from http_svc.discovery import Discovery
from http_svc.errors import JsonErrorHandler
from http_svc.metrics import Metrics
from http_svc.openapi import build_openapi
from http_svc.protocol import bounded_body_request
from http_svc.rate_limit import RateLimiter, Shares
from http_svc.routes import bp
from http_svc.rpc_client import RpcClient
from im_common.etcd import etcd_client
from im_common.gc_tuning import tune_gc
from im_common.logs import configure_logging


@dataclass
class AppContext:
    """What the handlers share: settings, the im-rpc client (per worker), metrics."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    openapi: bytes = b""
    rpc: RpcClient = field(init=False)
    etcd: aetcd.Client | None = None
    discovery: Discovery | None = None
    sender_limiter: RateLimiter | None = None
    wait_shares: Shares = field(default_factory=lambda: Shares(1 << 30))
    auth: Authenticator | None = None  # None: authentication off
    key_reloader: KeyReloader | None = None


def create_app(settings: Settings, name: str = "im_http") -> Sanic[Config, AppContext]:
    """A gateway app; its im-rpc channels open at server start and close at stop."""
    configure_logging(settings.log_level, settings.log_format)  # here: every worker runs it
    ctx = AppContext(
        settings,
        metrics=Metrics(settings.max_metric_series),
        openapi=orjson.dumps(build_openapi(settings.max_body_bytes, auth=settings.auth)),
    )
    if settings.auth:
        ctx.auth = Authenticator(
            load_keys(settings.auth_jwt_secret, settings.auth_jwks_file),
            audience=settings.auth_audience,
            issuer=settings.auth_issuer,
            leeway_s=settings.auth_leeway_s,
            cache_size=settings.auth_cache_size,
        )
    ctx.wait_shares = Shares(settings.max_waiting_per_user)
    if settings.sender_rate > 0:
        ctx.sender_limiter = RateLimiter(settings.sender_rate, settings.sender_burst)
    app: Sanic[Config, AppContext] = Sanic(
        name,
        ctx=ctx,
        request_class=bounded_body_request(settings.body_timeout_s),
        error_handler=JsonErrorHandler(),
        dumps=orjson.dumps,
        loads=orjson.loads,
        configure_logging=False,
    )
    app.config.update(
        REQUEST_MAX_SIZE=settings.max_body_bytes,
        REQUEST_TIMEOUT=settings.request_timeout_s,
        RESPONSE_TIMEOUT=settings.response_timeout_s,
        REQUEST_MAX_HEADER_SIZE=settings.max_header_bytes,
        KEEP_ALIVE_TIMEOUT=settings.keepalive_s,
        GRACEFUL_SHUTDOWN_TIMEOUT=settings.drain_s,
        USE_UVLOOP=settings.uvloop,
        ACCESS_LOG=False,
        MOTD=False,
        FALLBACK_ERROR_FORMAT="json",
    )
    app.blueprint(bp)
    request_log.install(app, ctx.metrics, settings.access_log)

    @app.before_server_start
    async def open_rpc(app: Sanic[Config, AppContext]) -> None:
        ctx = app.ctx
        ctx.rpc = RpcClient(
            [] if settings.etcd_url else settings.rpc_addrs,
            settings.rpc_channels,
            settings.rpc_timeout_ms / 1000,
            batch_max=settings.rpc_batch_max,
            max_in_flight=settings.max_in_flight,
            max_waiting=settings.max_waiting,
            observe=ctx.metrics.observe_rpc,
            observe_batch=ctx.metrics.batch_calls.observe,
            observe_retry=ctx.metrics.observe_retry,
        )
        ctx.metrics.watch_rpc(ctx.rpc)
        if ctx.auth is not None and settings.auth_jwks_file:
            ctx.key_reloader = KeyReloader(
                ctx.auth, settings.auth_jwks_file, settings.auth_reload_s
            )
            ctx.key_reloader.start()
        if settings.etcd_url:
            ctx.etcd = etcd_client(settings.etcd_url, timeout_s=2.0)
            ctx.discovery = Discovery(ctx.etcd, settings.etcd_prefix, ctx.rpc.set_addrs)
            await ctx.discovery.start(wait_s=3.0)

    @app.after_server_start
    async def settle_memory(app: Sanic[Config, AppContext]) -> None:
        tune_gc(settings.gc_threshold)

    @app.after_server_stop
    async def close_rpc(app: Sanic[Config, AppContext]) -> None:
        ctx = app.ctx
        if ctx.key_reloader is not None:
            await ctx.key_reloader.close()
        if ctx.discovery is not None:
            await ctx.discovery.close()
        if ctx.etcd is not None:
            await ctx.etcd.close()
        ctx.rpc.close()

    return app
