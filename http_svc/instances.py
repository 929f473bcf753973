"""The im-rpc instances a gateway calls: a pool of channels per instance, and which to use.

The set changes at run time (etcd discovery calls `set_addrs`). A call goes to the
live instance with the fewest calls in flight (ties rotate); an instance whose
connection just failed is skipped for `down_s` unless no other is left. A removed
instance takes no new calls and its channels close once its calls in flight end.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from grpclib.client import Channel
from grpclib.health.v1.health_grpc import HealthStub

from http_svc.batch_stream import BatchStream
from http_svc.config import split_addr

log = logging.getLogger(__name__)


class Instance:
    """One im-rpc instance: `channels` HTTP/2 connections, their batch streams and health
    stubs."""

    def __init__(self, addr: str, channels: int) -> None:
        host, port = split_addr(addr)
        self.addr = addr
        self._channels = [Channel(host, port) for _ in range(channels)]
        self.health = [HealthStub(channel) for channel in self._channels]
        self.streams = [BatchStream(channel) for channel in self._channels]
        self._next = itertools.cycle(range(channels))
        self.in_flight = 0
        self.calls = 0
        self.down_until = 0.0
        self.retired = False

    def channel(self) -> int:
        """The index of the channel to use next (round robin)."""
        return next(self._next)

    def close(self) -> None:
        """End the batch streams and close every channel."""
        for stream in self.streams:
            stream.close()
        for channel in self._channels:
            channel.close()


class InstancePool:
    """The live instances, by address; see the module docstring for how one is picked."""

    def __init__(self, channels: int, down_s: float = 1.0) -> None:
        self._channels = channels
        self._down_s = down_s
        self._live: dict[str, Instance] = {}
        self._order: list[Instance] = []
        self._turn = itertools.count()

    @property
    def instances(self) -> list[Instance]:
        """The live instances."""
        return list(self._order)

    @property
    def size(self) -> int:
        """How many instances are live."""
        return len(self._order)

    def set_addrs(self, addrs: Iterable[str]) -> None:
        """Make `addrs` the live set: open pools for new ones, retire the ones not listed."""
        wanted = dict.fromkeys(addrs)
        for addr in wanted:
            if addr not in self._live:
                self._live[addr] = Instance(addr, self._channels)
                log.info("im-rpc instance added: %s", addr)
        for addr in [a for a in self._live if a not in wanted]:
            instance = self._live.pop(addr)
            instance.retired = True
            log.info("im-rpc instance removed: %s (%d calls in flight)", addr, instance.in_flight)
            if not instance.in_flight:
                instance.close()
        self._order = list(self._live.values())

    def pick(self, exclude: Instance | None = None) -> Instance | None:
        """The instance for the next call, or None when there is no other than `exclude`."""
        candidates = [i for i in self._order if i is not exclude]
        if not candidates:
            return None
        now = time.monotonic()
        up = [i for i in candidates if i.down_until <= now] or candidates
        start = next(self._turn)
        best = up[start % len(up)]
        for k in range(1, len(up)):
            other = up[(start + k) % len(up)]
            if other.in_flight < best.in_flight:
                best = other
        return best

    def mark_down(self, instance: Instance) -> None:
        """Skip `instance` for a while: its connection failed."""
        instance.down_until = time.monotonic() + self._down_s

    @contextmanager
    def use(self, instance: Instance) -> Iterator[Instance]:
        """Count a call in flight on `instance`; a retired one closes after its last call."""
        instance.in_flight += 1
        instance.calls += 1
        try:
            yield instance
        finally:
            instance.in_flight -= 1
            if instance.retired and not instance.in_flight:
                instance.close()

    def close(self) -> None:
        """Close every instance's channels."""
        for instance in self._order:
            instance.close()
        self._live.clear()
        self._order = []
