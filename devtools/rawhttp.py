"""A bare HTTP/1.1 keep-alive client on asyncio streams, for load in tests and perf/soak.

httpx costs the test process more CPU per request than the gateway spends on it, so
latencies measured with it are the client's own queueing. This one writes a request
and reads status, headers and a Content-Length body: enough for the gateway's answers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson


@dataclass
class Answer:
    """One response: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


class Connection:
    """One kept-alive connection to 127.0.0.1:port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, port: int, source: str | None = None) -> Connection:
        """A connection to 127.0.0.1:port, from loopback address `source` (127.0.0.2, ...:
        a client of another address) when given."""
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
        return cls(reader, writer)

    async def post_json(
        self, path: str, body: object, headers: dict[str, str] | None = None
    ) -> Answer:
        payload = orjson.dumps(body)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: t\r\n{_lines(headers)}Content-Type: "
            f"application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self._writer.write(head.encode() + payload)
        return await self._read()

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        self._writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n{_lines(headers)}\r\n".encode())
        return await self._read()

    def send_only(self, request: str) -> None:
        """Write a request and read nothing (a client that leaves before the answer)."""
        self._writer.write(request.encode())

    async def raw(self, request: bytes) -> Answer:
        """Write `request` as it is (any bytes) and read the answer."""
        self._writer.write(request)
        return await self._read()

    async def _read(self) -> Answer:
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        body = await self._reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(status, headers, body)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


def _lines(headers: dict[str, str] | None) -> str:
    """`headers` as a request's header lines."""
    return "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
