"""Entry point of im-rpc: `im-rpc [flags]` or `python -m rpc_svc`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from im_common.fd_limit import raise_fd_limit
from im_common.logs import configure_logging
from im_common.settings import load_or_exit
from rpc_svc.config import Settings
from rpc_svc.server import serve

FD_RESERVE = 1024  # gateways' connections, wake-up subscriptions, etcd, logs


def main(argv: Sequence[str] | None = None) -> int:
    """Load the settings, then serve until stopped; exit 2 on bad settings."""
    settings = load_or_exit(Settings.from_env, "im-rpc", argv)
    configure_logging(settings.log_level, settings.log_format)
    raise_fd_limit(
        settings.redis_max_connections + FD_RESERVE,
        f"IM_REDIS_MAX_CONNECTIONS + {FD_RESERVE}",
    )
    if settings.uvloop:
        import uvloop

        uvloop.run(serve(settings))
    else:
        asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
