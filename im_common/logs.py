"""Logging set-up shared by both services: one JSON object per line on stderr.

Each record carries the request id of the request being served (`request_id`, set by
the gateway per HTTP request and by im-rpc per call or batch) so that a request can be
followed from nginx through the gateway to im-rpc. Message texts are never logged:
log calls name sizes, counts and codes, not bodies.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from contextvars import ContextVar
from typing import Any

import orjson

from im_common.settings import SettingsError

request_id: ContextVar[str] = ContextVar("request_id", default="")

LOG_FORMATS = ("json", "text")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# LogRecord attributes that are not extras passed by the caller
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def check_log_format(fmt: str) -> None:
    """SettingsError unless `fmt` is one of LOG_FORMATS."""
    if fmt not in LOG_FORMATS:
        raise SettingsError(f"IM_LOG_FORMAT: {fmt!r} is not one of {', '.join(LOG_FORMATS)}")


def valid_request_id(value: str | None) -> str | None:
    """`value` if it is usable as a request id (1..128 safe ASCII characters), else None."""
    return value if value is not None and _REQUEST_ID.fullmatch(value) else None


class JsonFormatter(logging.Formatter):
    """ts, level, logger, msg, the request id when there is one, extras, the exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str, fmt: str = "json") -> None:
    """Send records at `level` and above to stderr: JSON lines, or text for people."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
