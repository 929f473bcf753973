"""The keys the gateway verifies tokens with, and their rotation without a restart.

`load_keys` reads IM_AUTH_JWT_SECRET and the IM_AUTH_JWKS_FILE key set. `KeyReloader`
re-reads the file at server start, every few seconds and on SIGHUP; when its content
changed and is a usable key set, the authenticator switches to it (tokens of a key still
in the file keep working; a removed key's fail at once). An unusable file is logged and
ignored: the keys in use stay, so a bad edit locks nobody out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from pathlib import Path

from http_svc.auth import Authenticator, Keys
from im_common.jwks import JwksError, parse_keys, read_keys
from im_common.tasks import cancel_and_wait

log = logging.getLogger(__name__)


def load_keys(secret: str, jwks_file: str) -> Keys:
    """The configured keys; JwksError when the key set file cannot be used."""
    public = read_keys(Path(jwks_file)) if jwks_file else {}
    return Keys(secret.encode() if secret else None, public)


class KeyReloader:
    """Keeps `auth`'s keys in step with the key set file at `path`."""

    def __init__(self, auth: Authenticator, path: str, every_s: float) -> None:
        self._auth = auth
        self._path = Path(path)
        self._every_s = every_s
        self._seen: bytes | None = None  # the content the keys in use were read from
        self._task: asyncio.Task[None] | None = None

    def _content(self) -> bytes | None:
        try:
            return self._path.read_bytes()
        except OSError:
            return None

    def reload(self) -> bool:
        """Use the file's keys if it changed and is usable; True when the keys changed."""
        content = self._content()
        if content == self._seen:
            return False
        self._seen = content
        try:
            if content is None:
                raise JwksError(f"{self._path}: cannot read it")
            public = parse_keys(json.loads(content))
        except ValueError as exc:  # JwksError included
            log.error("key set not reloaded, the keys in use stay: %s", exc)
            return False
        self._auth.set_keys(Keys(self._auth.keys.secret, public))
        log.info("key set in use: %d key(s): %s", len(public), ", ".join(public))
        return True

    def start(self) -> None:
        """Check the file now (it may have changed since the keys in use were read), then
        every `every_s` seconds and on SIGHUP."""
        self.reload()
        self._task = asyncio.get_running_loop().create_task(self._watch())
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            log.debug("no SIGHUP handler: the key set is reloaded by polling only")

    async def close(self) -> None:
        """Stop watching."""
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await cancel_and_wait(self._task)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            self.reload()
