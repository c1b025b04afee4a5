"""A load generator light enough not to be the bottleneck: a fixed pool of keep-alive
HTTP/1.1 connections on bare asyncio streams. httpx spent more CPU per request than intake
itself, and its pool keeps only 20 idle connections, so the bench reopened connections
and offered a fraction of the load it was asked to."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HttpConnections:
    def __init__(self, base_url: str, size: int, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.size = size
        self._head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        self._opened = 0

    async def post_json(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST `body` as JSON; returns (status, response body)."""
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self._head}"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                   "\r\n").encode() + body
        try:
            return await self._exchange(await self._take(), request)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise
            # The server closed an idle connection (its keep-alive timeout) before reading
            # the request: nothing was done, so send it once more on a new connection (the
            # other idle ones may be just as stale).
            return await self._exchange(await self._open(), request)

    async def _exchange(self, conn: Connection, request: bytes) -> tuple[int, bytes]:
        reader, writer = conn
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status, length, closing = _parse_head(head)
            answer = await reader.readexactly(length)
        except BaseException:
            writer.close()
            self._opened -= 1
            raise
        if closing:
            writer.close()
            self._opened -= 1
        else:
            self._idle.put_nowait(conn)
        return status, answer

    async def close(self) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()

    async def _take(self) -> Connection:
        if self._idle.empty() and self._opened < self.size:
            return await self._open()
        return await self._idle.get()

    async def _open(self) -> Connection:
        self._opened += 1
        try:
            return await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        except BaseException:
            self._opened -= 1
            raise


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, content length, whether the server closes the connection)."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, closing = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            closing = True
        elif name == "transfer-encoding":
            raise ValueError("chunked responses are not expected from these endpoints")
    return status, length, closing
