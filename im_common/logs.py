"""Logging set-up shared by both services: one line per record on stderr."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    """Send records at `level` and above to stderr with a timestamp and logger name."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
