"""etcd for service discovery: the client both services use, and where instances are listed.

An im-rpc instance is the key ``<prefix><host:port>`` with its address as the value,
attached to a lease the instance keeps alive (see rpc_svc.registry); gateways read
and watch the prefix (see http_svc.discovery).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aetcd

from im_common.settings import SettingsError

# grpcio's reconnect backoff grows to 120 s by default: a restarted etcd would be
# noticed minutes late. Discovery wants it back within a second.
_CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 1000,
}

# What an etcd call raises when etcd cannot be reached or refuses: retry later.
ETCD_ERRORS = (aetcd.ClientError, OSError, TimeoutError)


def parse_etcd_url(url: str) -> tuple[str, int]:
    """Host and port of an ``http://host:port`` etcd URL; SettingsError if malformed."""
    parts = urlsplit(url)
    try:
        port = parts.port or 2379
    except ValueError:
        port = 0
    if parts.scheme != "http" or not parts.hostname or not 1 <= port <= 65535:
        raise SettingsError(f"IM_ETCD_URL: {url!r} is not http://host:port")
    return parts.hostname, port


def etcd_client(url: str, timeout_s: float) -> aetcd.Client:
    """An etcd client (it connects on first use) with a deadline on each call."""
    host, port = parse_etcd_url(url)
    return aetcd.Client(host, port, timeout=timeout_s, options=dict(_CHANNEL_OPTIONS))


def instance_key(prefix: str, addr: str) -> bytes:
    """The key an instance at `addr` registers under."""
    return f"{prefix}{addr}".encode()
