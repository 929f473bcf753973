"""Entry point of im-http: `im-http [flags]` or `python -m http_svc`."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from functools import partial

from sanic import Sanic
from sanic.worker.loader import AppLoader

from http_svc.app import create_app
from http_svc.config import Settings
from http_svc.protocol import WholeRequestTimeout
from im_common.fd_limit import raise_fd_limit
from im_common.logs import configure_logging
from im_common.settings import load_or_exit

FD_RESERVE = 256  # listeners, im-rpc channels, etcd, logs, idle keep-alive connections


def main(argv: Sequence[str] | None = None) -> int:
    """Load the settings, then serve until SIGTERM/SIGINT; exit 2 on bad settings."""
    settings = load_or_exit(Settings.from_env, "im-http", argv)
    configure_logging(settings.log_level, settings.log_format)
    # each worker holds its long polls', requests' and queued connections' descriptors
    raise_fd_limit(
        settings.max_waiting + settings.max_in_flight + settings.backlog + FD_RESERVE,
        f"IM_HTTP_MAX_WAITING + IM_HTTP_MAX_IN_FLIGHT + IM_HTTP_BACKLOG + {FD_RESERVE}",
    )
    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    single = settings.workers == 1
    app.prepare(
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        backlog=settings.backlog,
        single_process=single,
        access_log=False,
        motd=False,
        protocol=WholeRequestTimeout,
    )
    if single:
        Sanic.serve_single(app)
    else:
        # Sanic's manager process has no SIGHUP handler (the default would kill it): it
        # ignores SIGHUP, and so do its workers until each installs its key reloader's own
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        Sanic.serve(primary=app, app_loader=loader)
    return 0


if __name__ == "__main__":
    sys.exit(main())
