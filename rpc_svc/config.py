"""im-rpc settings: `IM_*` environment variables and CLI flags, read once at start."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from im_common.etcd import parse_etcd_url
from im_common.gc_tuning import gc_threshold_setting
from im_common.logs import check_log_format
from im_common.settings import load_settings, setting


@dataclass(frozen=True, slots=True)
class Settings:
    """Settings of im-rpc, the chat RPC service."""

    host: str = setting("IM_RPC_HOST", "127.0.0.1", "address the gRPC server listens on")
    port: int = setting("IM_RPC_PORT", 8888, "gRPC port", lo=1, hi=65535)
    metrics_port: int = setting(
        "IM_RPC_METRICS_PORT",
        0,
        "port of this im-rpc's Prometheus metrics (HTTP, on IM_RPC_HOST); 0: none",
        lo=0,
        hi=65535,
    )
    redis_url: str = setting("IM_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis to store in")
    redis_cluster: bool = setting(
        "IM_REDIS_CLUSTER",
        False,
        "IM_REDIS_URL is a seed node of a Redis Cluster (the slots and nodes are read from it)",
    )
    redis_wait_replicas: int = setting(
        "IM_REDIS_WAIT_REPLICAS",
        0,
        "acknowledge a send only once this many replicas have it (WAIT); 0: do not wait",
        lo=0,
        hi=16,
    )
    redis_wait_timeout_ms: int = setting(
        "IM_REDIS_WAIT_TIMEOUT_MS",
        100,
        "with IM_REDIS_WAIT_REPLICAS, how long a send waits for them (then 504 store_timeout)",
        lo=1,
        hi=60_000,
    )
    redis_max_connections: int = setting(
        "IM_REDIS_MAX_CONNECTIONS", 64, "Redis connections in the pool", lo=1, hi=100_000
    )
    redis_timeout_ms: int = setting(
        "IM_REDIS_TIMEOUT_MS", 1000, "connect/read timeout of a Redis call", lo=1, hi=600_000
    )
    max_waiting: int = setting(
        "IM_RPC_MAX_WAITING",
        10_000,
        "long polls waiting in this im-rpc; past it one answers 503 overloaded at once",
        lo=1,
        hi=1_000_000,
    )
    require_user: bool = setting(
        "IM_RPC_REQUIRE_USER",
        False,
        "serve only calls that carry the acting user (gateways with authentication on); "
        "a call without one fails (502 user_required at the gateway)",
    )
    group_max_members: int = setting(
        "IM_GROUP_MAX_MEMBERS",
        1000,
        "most members of a group (409 group_full beyond)",
        lo=1,
        hi=1_000_000,
    )
    group_fanout_max: int = setting(
        "IM_GROUP_FANOUT_MAX_MEMBERS",
        100,
        "a group of at most this many members is small: a send moves it in each member's "
        "inbox; beyond, it is big for good: sends write nothing per member",
        lo=0,
        hi=1_000_000,
    )
    user_max_groups: int = setting(
        "IM_USER_MAX_GROUPS",
        500,
        "most groups a user may be a member of (409 too_many_groups for the create or add "
        "beyond); bounds what anyone can make a user hold, and its inbox's and groups "
        "list's worst case",
        lo=1,
        hi=100_000,
    )
    max_text_bytes: int = setting(
        "IM_MAX_TEXT_BYTES", 4096, "largest message text in UTF-8 bytes", lo=1, hi=1 << 20
    )
    idempotency_ttl_s: int = setting(
        "IM_IDEMPOTENCY_TTL_S", 86_400, "how long a client_msg_id is remembered", lo=1
    )
    retry_key_ttl_s: int = setting(
        "IM_RETRY_KEY_TTL_S",
        60,
        "how long a gateway-made idempotency key (sends without client_msg_id) is remembered",
        lo=1,
    )
    short_chat_messages: int = setting(
        "IM_SHORT_CHAT_MESSAGES",
        32,
        "a chat (or group) keeps its messages in one compact hash until it has this many, "
        "then in a stream (0: streams from the first message; at most 128, the entries "
        "Redis keeps a hash compact for by default)",
        lo=0,
        hi=128,
    )
    edit_window_s: int = setting(
        "IM_EDIT_WINDOW_S",
        172_800,
        "how long after its send time a message may be edited by its sender (0: any time)",
        lo=0,
    )
    recall_window_s: int = setting(
        "IM_RECALL_WINDOW_S",
        172_800,
        "how long after its send time a message may be recalled by its sender (a group's owner "
        "may recall any message at any time; 0: any time)",
        lo=0,
    )
    sync_retain: int = setting(
        "IM_SYNC_RETAIN",
        10_000,
        "sync: the newest events of each user kept at least; a token older than them "
        "answers 410 sync_reset",
        lo=1,
        hi=10_000_000,
    )
    sync_idle_s: int = setting(
        "IM_SYNC_IDLE_S",
        30 * 86_400,
        "sync: a user's feed is dropped after this long without a sync (its tokens then "
        "answer 410 sync_reset); a user that never syncs has none",
        lo=1,
    )
    sync_token_version: int = setting(
        "IM_SYNC_TOKEN_VERSION",
        2,
        "sync: the version of the tokens this im-rpc makes (it reads both): 1 (no check of "
        "the record a token read last) during a rolling upgrade from an im-rpc that refuses "
        "version 2, until every instance is of this release",
        lo=1,
        hi=2,
    )
    drain_s: float = setting(
        "IM_RPC_DRAIN_S", 10.0, "on SIGTERM, how long to wait for calls in flight", lo=0
    )
    etcd_url: str = setting(
        "IM_ETCD_URL", "", "etcd to register in, e.g. http://127.0.0.1:2379 (empty: no etcd)"
    )
    etcd_prefix: str = setting("IM_ETCD_PREFIX", "/im/rpc/", "etcd key prefix of im-rpc instances")
    etcd_lease_ttl_s: int = setting(
        "IM_ETCD_LEASE_TTL_S",
        5,
        "lease of the registration: a dead instance is forgotten after it",
        lo=2,
        hi=3600,
    )
    advertise: str = setting(
        "IM_RPC_ADVERTISE",
        "",
        "host:port gateways dial, registered in etcd (empty: IM_RPC_HOST:IM_RPC_PORT, or this "
        "host's address when listening on all interfaces)",
    )
    deregister_grace_s: float = setting(
        "IM_RPC_DEREGISTER_GRACE_S",
        1.0,
        "on SIGTERM, how long to keep taking new calls after leaving etcd (gateways catch up)",
        lo=0,
        hi=60,
    )
    uvloop: bool = setting("IM_UVLOOP", True, "run on uvloop (false: plain asyncio)")
    gc_threshold: int = gc_threshold_setting()
    log_level: str = setting("IM_LOG_LEVEL", "INFO", "logging level")
    log_format: str = setting(
        "IM_LOG_FORMAT", "json", "json (one object per line, with request_id) or text"
    )

    def __post_init__(self) -> None:
        check_log_format(self.log_format)
        if self.etcd_url:
            parse_etcd_url(self.etcd_url)

    @property
    def advertised_addr(self) -> str:
        """The host:port this instance registers in etcd."""
        if self.advertise:
            return self.advertise
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostbyname(socket.gethostname())
        return f"{host}:{self.port}"

    @classmethod
    def from_env(cls, argv: Sequence[str] | None = None) -> Settings:
        """Settings from CLI flags, then the environment, then the defaults."""
        return load_settings(cls, os.environ, argv, prog="im-rpc")
