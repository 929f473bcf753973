"""The scaled topology as local processes: redis, etcd, N im-rpc, M im-http and nginx.

    python -m devtools.cluster [--rpc 3] [--http 2] [--port 8000] [--dir .run/cluster] [--open]

(`scripts/start --cluster ...` runs this after installing what is missing.) It writes a
Procfile, an env file and nginx's config into --dir, then hands over to honcho, which
starts every line, prefixes their output, and stops them all on Ctrl-C (SIGTERM first:
im-rpc leaves etcd and drains, gateways drain). A last Procfile line waits until a
request through nginx succeeds and prints the URL. It is the same topology as
docker-compose.scale.yml; a private redis-server is started unless IM_REDIS_URL is set.

Authentication is on (unless --open): the gateways verify tokens against a key set made
in --dir/keys on first start (kept across starts), im-rpc requires the acting user, and
the ready line prints a token to try. Keys of your own (IM_AUTH_JWT_SECRET or
IM_AUTH_JWKS_FILE in the environment) are used instead of making one.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from devtools.nginx import nginx_argv, write_config
from devtools.procs import BIN, HOST, etcd_argv, free_port, redis_argv
from im_common.token_cli import add_key, mint

ROOT = Path(__file__).resolve().parent.parent


def _line(name: str, argv: Sequence[str]) -> str:
    return f"{name}: exec {shlex.join(argv)}"


def _auth(directory: Path, env: dict[str, str]) -> Path | None:
    """Turn authentication on in `env`; the private key set to mint tokens with (None when
    the environment brings its own keys)."""
    env["IM_RPC_REQUIRE_USER"] = "true"
    if os.environ.get("IM_AUTH_JWT_SECRET") or os.environ.get("IM_AUTH_JWKS_FILE"):
        return None
    private, public = directory / "keys" / "idp.jwks", directory / "keys" / "gateway.jwks"
    if not public.exists() or not private.exists():
        add_key(private, public)
    env["IM_AUTH_JWKS_FILE"] = str(public)
    return private


def write_procfile(
    directory: Path,
    rpcs: int,
    gateways: int,
    port: int,
    redis_url: str | None,
    *,
    auth: bool = True,
) -> Path:
    """Write the Procfile, env file and nginx config of the cluster; the Procfile's path."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    env: dict[str, str] = {}
    signing = _auth(directory, env) if auth else None
    if redis_url is None:
        redis_port = free_port()
        fsync = os.environ.get("IM_REDIS_APPENDFSYNC", "everysec")
        lines.append(_line("redis", redis_argv(directory / "redis", redis_port, fsync=fsync)))
        redis_url = f"redis://{HOST}:{redis_port}/0"
    etcd_port = free_port()
    lines.append(_line("etcd", etcd_argv(directory, etcd_port, free_port())))
    env["IM_REDIS_URL"] = redis_url
    env["IM_ETCD_URL"] = f"http://{HOST}:{etcd_port}"
    env["IM_HTTP_REAL_IP_HEADER"] = "x-real-ip"  # the gateways are nginx's: it sets it
    for i in range(rpcs):
        lines.append(_line(f"rpc{i + 1}", [str(BIN / "im-rpc"), "--rpc-port", str(free_port())]))
    http_ports = [free_port() for _ in range(gateways)]
    for i, http_port in enumerate(http_ports):
        lines.append(_line(f"http{i + 1}", [str(BIN / "im-http"), "--http-port", str(http_port)]))
    nginx_dir = directory / "nginx"
    max_body = int(os.environ.get("IM_HTTP_MAX_BODY_BYTES", "65536"))
    write_config(nginx_dir, port, [f"{HOST}:{p}" for p in http_ports], max_body)
    lines.append(_line("nginx", nginx_argv(nginx_dir, "-g", "daemon off;")))
    url = f"http://{HOST}:{port}"
    ready = [sys.executable, "-m", "devtools.cluster", "--wait-ready", url]
    if auth:
        ready += ["--auth-keys", str(signing or "")]
    lines.append(_line("ready", ready))
    (directory / "env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    procfile = directory / "Procfile"
    procfile.write_text("\n".join(lines) + "\n")
    return procfile


def _try_line(url: str, signing: Path | None) -> str:
    """How to try the cluster: a curl with a token when authentication is on."""
    if signing is None:
        return f"(try: curl {url}/ping)"
    if not signing.name:
        return "authentication is on, with the IM_AUTH_* keys of your environment"
    token = mint("alice", 3600, private_path=signing)
    return (
        "authentication is on; a token for user alice (1 h), and how to make more:\n"
        f"  TOKEN={token}\n"
        f"  curl -H \"Authorization: Bearer $TOKEN\" '{url}/api/pull?chat=alice:bob'\n"
        f"  .venv/bin/im-token mint USER --ttl 3600 --private {signing}"
    )


def wait_ready(url: str, signing: Path | None = None, timeout_s: float = 60.0) -> int:
    """Wait until GET <url>/readyz answers 200, print the URL (and a token to try when
    `signing` is the key set to mint with), then stay until stopped."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            print(f"not ready after {timeout_s:.0f}s: {url}/readyz", flush=True)
            return 1
        time.sleep(0.2)
    print(f"ready: {url}  {_try_line(url, signing)}", flush=True)
    print("Ctrl-C stops everything", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


def main(argv: Sequence[str] | None = None) -> int:
    """Write the cluster's files and run it under honcho until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m devtools.cluster", description=__doc__)
    parser.add_argument("--rpc", type=int, default=3, help="im-rpc instances (default 3)")
    parser.add_argument("--http", type=int, default=2, help="im-http gateways (default 2)")
    parser.add_argument("--port", type=int, default=8000, help="nginx port (default 8000)")
    parser.add_argument("--dir", type=Path, default=ROOT / ".run" / "cluster")
    parser.add_argument(
        "--open", action="store_true", help="no authentication (the original open API)"
    )
    parser.add_argument("--wait-ready", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--auth-keys", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.wait_ready:
        return wait_ready(args.wait_ready, args.auth_keys)
    if args.rpc < 1 or args.http < 1:
        parser.error("--rpc and --http must be at least 1")
    procfile = write_procfile(
        args.dir.resolve(),
        args.rpc,
        args.http,
        args.port,
        os.environ.get("IM_REDIS_URL"),
        auth=not args.open,
    )
    auth = "open, no authentication" if args.open else "authentication on"
    print(
        f"[cluster] {procfile} ({args.rpc} im-rpc, {args.http} im-http, nginx on {args.port}; "
        f"{auth})"
    )
    honcho = str(BIN / "honcho")
    env_file = str(procfile.parent / "env")
    os.execv(honcho, [honcho, "start", "-f", str(procfile), "-d", str(ROOT), "-e", env_file])


if __name__ == "__main__":
    sys.exit(main())
