"""The keys the gateway verifies tokens with, and their rotation without a restart.

`load_keys` reads IM_AUTH_JWT_SECRET and the IM_AUTH_JWKS_FILE key set. `KeyReloader`
re-reads the file every few seconds and on SIGHUP; when its content changed and is a
usable key set, the authenticator switches to it (tokens of a key still in the file keep
working; a removed key's fail at once). An unusable file is logged and ignored: the keys
in use stay, so a bad edit locks nobody out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from http_svc.auth import Authenticator, Keys
from im_common.jwks import JwksError, read_keys
from im_common.tasks import cancel_and_wait

log = logging.getLogger(__name__)


def load_keys(secret: str, jwks_file: str) -> Keys:
    """The configured keys; JwksError when the key set file cannot be used."""
    public = read_keys(Path(jwks_file)) if jwks_file else {}
    return Keys(secret.encode() if secret else None, public)


class KeyReloader:
    """Keeps `auth`'s keys in step with the key set file at `path`."""

    def __init__(self, auth: Authenticator, secret: str, path: str, every_s: float) -> None:
        self._auth = auth
        self._secret = secret
        self._path = Path(path)
        self._every_s = every_s
        self._seen = self._content()
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
            keys = load_keys(self._secret, str(self._path))
        except JwksError as exc:
            log.error("key set not reloaded, the keys in use stay: %s", exc)
            return False
        self._auth.set_keys(keys)
        log.info("key set reloaded: %d key(s): %s", len(keys.public), ", ".join(keys.public))
        return True

    def start(self) -> None:
        """Check the file every `every_s` seconds and on SIGHUP."""
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
