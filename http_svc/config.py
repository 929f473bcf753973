"""im-http settings: `IM_*` environment variables and CLI flags, read once at start."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from im_common.etcd import parse_etcd_url
from im_common.gc_tuning import gc_threshold_setting
from im_common.jwks import JwksError, read_keys
from im_common.logs import check_log_format
from im_common.settings import SettingsError, load_settings, setting

MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key as long as the hash


@dataclass(frozen=True, slots=True)
class Settings:
    """Settings of im-http, the HTTP gateway."""

    host: str = setting("IM_HTTP_HOST", "127.0.0.1", "address the HTTP server listens on")
    port: int = setting("IM_HTTP_PORT", 8080, "HTTP port", lo=1, hi=65535)
    workers: int = setting("IM_HTTP_WORKERS", 1, "gateway worker processes", lo=1, hi=64)
    rpc_addrs: tuple[str, ...] = setting(
        "IM_RPC_ADDRS",
        ("127.0.0.1:8888",),
        "comma-separated host:port list of im-rpc (ignored when IM_ETCD_URL is set)",
    )
    etcd_url: str = setting(
        "IM_ETCD_URL", "", "etcd to discover im-rpc in, e.g. http://127.0.0.1:2379 (empty: no etcd)"
    )
    etcd_prefix: str = setting("IM_ETCD_PREFIX", "/im/rpc/", "etcd key prefix of im-rpc instances")
    rpc_channels: int = setting(
        "IM_RPC_CHANNELS", 2, "gRPC channels (HTTP/2 connections) per im-rpc address", lo=1, hi=64
    )
    rpc_timeout_ms: int = setting(
        "IM_RPC_TIMEOUT_MS", 2000, "deadline of every call to im-rpc", lo=1, hi=600_000
    )
    max_in_flight: int = setting(
        "IM_HTTP_MAX_IN_FLIGHT",
        256,
        "calls to im-rpc in flight per gateway process (long polls aside); past it: 503 overloaded",
        lo=1,
        hi=1_000_000,
    )
    max_waiting: int = setting(
        "IM_HTTP_MAX_WAITING",
        10_000,
        "long polls (pulls and syncs with wait_ms) waiting per gateway process; past it: 503 "
        "overloaded",
        lo=1,
        hi=1_000_000,
    )
    max_waiting_per_user: int = setting(
        "IM_HTTP_MAX_WAITING_PER_USER",
        100,
        "long polls one user (authentication on: the token's sub; off: the client's address) "
        "may hold waiting per gateway process; past it: 429 too_many_long_polls",
        lo=1,
        hi=1_000_000,
    )
    real_ip_header: str = setting(
        "IM_HTTP_REAL_IP_HEADER",
        "",
        "request header holding the client's address, set by the proxy in front (e.g. "
        "x-real-ip; the last address of a list); empty: the connection's peer. Set it only "
        "where clients reach the gateway through that proxy alone",
    )
    rpc_batch_max: int = setting(
        "IM_RPC_BATCH_MAX", 32, "most calls in one batch (it goes out when full)", lo=1, hi=10_000
    )
    sender_rate: float = setting(
        "IM_HTTP_SENDER_RATE",
        0.0,
        "sends per second allowed per sender and gateway process, 429 beyond (0: no limit)",
        lo=0,
    )
    sender_burst: int = setting(
        "IM_HTTP_SENDER_BURST", 20, "sends a sender may make at once before the rate applies", lo=1
    )
    max_metric_series: int = setting(
        "IM_HTTP_MAX_METRIC_SERIES",
        1000,
        "request label sets (route, method, status) in /metrics; past it a new one counts as "
        'route and method "other" (unknown methods always do)',
        lo=10,
        hi=1_000_000,
    )
    auth_jwt_secret: str = setting(
        "IM_AUTH_JWT_SECRET",
        "",
        "HS256 secret (32 bytes or more) tokens may be signed with; setting it or "
        "IM_AUTH_JWKS_FILE turns authentication on",
        secret=True,
    )
    auth_jwks_file: str = setting(
        "IM_AUTH_JWKS_FILE",
        "",
        "JWKS file of the public keys (RS256, ES256) tokens may be signed with, chosen by kid; "
        "re-read when it changes",
    )
    auth_audience: str = setting(
        "IM_AUTH_AUDIENCE", "", "when set, a token's aud must hold it (empty: aud not checked)"
    )
    auth_issuer: str = setting(
        "IM_AUTH_ISSUER", "", "when set, a token's iss must be it (empty: iss not checked)"
    )
    auth_leeway_s: int = setting(
        "IM_AUTH_LEEWAY_S",
        30,
        "clock skew allowed for a token's nbf and iat (exp gets none)",
        lo=0,
        hi=30,
    )
    auth_cache_size: int = setting(
        "IM_AUTH_CACHE_SIZE",
        10_000,
        "verified tokens remembered per gateway process (until their exp; 0: verify every request)",
        lo=0,
        hi=10_000_000,
    )
    auth_reload_s: float = setting(
        "IM_AUTH_RELOAD_S",
        2.0,
        "how often IM_AUTH_JWKS_FILE is checked for changes (SIGHUP: at once)",
        lo=0.1,
        hi=3600,
    )
    max_body_bytes: int = setting(
        "IM_HTTP_MAX_BODY_BYTES", 65_536, "largest request body (413 beyond)", lo=1024
    )
    request_timeout_s: float = setting(
        "IM_HTTP_REQUEST_TIMEOUT_S", 10.0, "time to receive a whole request", lo=0.1
    )
    body_timeout_s: float = setting(
        "IM_HTTP_BODY_TIMEOUT_S",
        10.0,
        "time to receive a request body once its head is in (408 and disconnect beyond)",
        lo=0.1,
    )
    response_timeout_s: float = setting(
        "IM_HTTP_RESPONSE_TIMEOUT_S",
        40.0,
        "longest time to answer a request (503 beyond); above the longest wait_ms (30 s)",
        lo=0.1,
    )
    max_header_bytes: int = setting(
        "IM_HTTP_MAX_HEADER_BYTES", 8192, "largest request head: line and headers", lo=1024
    )
    backlog: int = setting(
        "IM_HTTP_BACKLOG", 2048, "connections the kernel queues before accept", lo=1, hi=65535
    )
    keepalive_s: float = setting(
        "IM_HTTP_KEEPALIVE_S", 75.0, "idle keep-alive connection timeout", lo=0.1
    )
    drain_s: float = setting(
        "IM_HTTP_DRAIN_S", 10.0, "on SIGTERM, how long to wait for requests in flight", lo=0
    )
    uvloop: bool = setting("IM_UVLOOP", True, "run on uvloop (false: plain asyncio)")
    gc_threshold: int = gc_threshold_setting()
    access_log: bool = setting(
        "IM_HTTP_ACCESS_LOG", False, "one JSON line per request (method, route, status, ms, id)"
    )
    log_level: str = setting("IM_LOG_LEVEL", "INFO", "logging level")
    log_format: str = setting(
        "IM_LOG_FORMAT", "json", "json (one object per line, with request_id) or text"
    )

    def __post_init__(self) -> None:
        check_log_format(self.log_format)
        if not self.rpc_addrs and not self.etcd_url:
            raise SettingsError("IM_RPC_ADDRS: at least one host:port is needed without etcd")
        for addr in self.rpc_addrs:
            split_addr(addr)
        if self.etcd_url:
            parse_etcd_url(self.etcd_url)
        if self.auth_jwt_secret and len(self.auth_jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise SettingsError(
                f"IM_AUTH_JWT_SECRET: use {MIN_SECRET_BYTES} bytes or more "
                "(`im-token secret` makes one)"
            )
        if self.auth_jwks_file:
            try:
                read_keys(Path(self.auth_jwks_file))
            except JwksError as exc:
                raise SettingsError(f"IM_AUTH_JWKS_FILE: {exc}") from None

    @property
    def auth(self) -> bool:
        """Whether authentication is on: a key is configured."""
        return bool(self.auth_jwt_secret or self.auth_jwks_file)

    @classmethod
    def from_env(cls, argv: Sequence[str] | None = None) -> Settings:
        """Settings from CLI flags, then the environment, then the defaults."""
        return load_settings(cls, os.environ, argv, prog="im-http")


def split_addr(addr: str) -> tuple[str, int]:
    """Split "host:port" (or "[v6]:port") into host and port; SettingsError if malformed."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SettingsError(f"IM_RPC_ADDRS: {addr!r} is not host:port")
    return host.strip("[]"), int(port)
