"""Errors of the RPC service's domain and store.

    IMError
    ├── InvalidArgument    bad input; `code` is a machine code, `message` names the field
    ├── Forbidden          the acting user may not do this (another sender, not a member)
    ├── NotFound           a group that does not exist
    ├── Conflict           the group exists, is full, or its owner would leave
    ├── UserRequired       no acting user, and this instance requires one
    ├── Overloaded         a bound of this instance is reached (long polls waiting)
    ├── SyncReset          a sync token older than what the store keeps: start again
    │   └── SyncLostWrites     ... or newer: the store lost writes the token had seen
    └── StoreError         the store failed; nothing may be assumed stored
        ├── StoreUnavailable   Redis cannot be reached (or is loading)
        └── StoreTimeout       Redis did not answer in time

The servicer maps each to one gRPC status; nothing else leaks out of the store.
"""

from __future__ import annotations


class IMError(Exception):
    """Base of every error the service raises on purpose."""

    code = "internal"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(IMError):
    """The request breaks a rule of the contract."""

    code = "invalid_argument"


class Forbidden(IMError):
    """The acting user may not make this call."""

    code = "forbidden"


class NotFound(IMError):
    """What the call names does not exist (a group)."""

    code = "not_found"


class Conflict(IMError):
    """The call conflicts with the state: a group that exists already, a full group, an
    owner leaving."""

    code = "conflict"


class UserRequired(IMError):
    """The call carries no acting user, and this instance serves only calls that do."""

    code = "user_required"


class Overloaded(IMError):
    """A bound of this instance is reached; the client may retry shortly."""

    code = "overloaded"


class SyncReset(IMError):
    """A sync token names events the store no longer keeps (or a feed that is gone): the
    client starts again without one."""

    code = "sync_reset"


class SyncLostWrites(SyncReset):
    """A sync token names records its feed no longer has where the token read them: the
    store lost writes the token had seen (a replica promoted without them, an append-only
    file cut short). The client starts again, as for SyncReset; im-rpc logs it, for it is
    the store's failure, not the client's."""


class StoreError(IMError):
    """The store could not do what was asked."""


class StoreUnavailable(StoreError):
    """Redis cannot be reached."""

    code = "store_unavailable"


class StoreTimeout(StoreError):
    """Redis did not answer within the configured timeout."""

    code = "store_timeout"
