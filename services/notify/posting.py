"""Posting one signed webhook or hotline callback: the sender's HTTP client, and nothing else.

The sender posts with aiohttp, not httpx: the stack's client spent about half of the
sender's CPU per delivery in its own bookkeeping (connection pool, backend detection,
streams; docs/performance.md). Every other HTTP call (SMS gateway, contact directory,
workbench, intake) stays on httpx. The behaviour is the one the sender had on httpx: a
timeout on each phase, redirects not followed, a name resolved afresh for every new
connection (the destination check before each attempt resolves it too), at most 4 KiB of a
refusal's body read for the delivery log."""

from __future__ import annotations

from types import TracebackType

import aiohttp

from kit.privacy import scrub
from services.notify.domain import DeliveryFailed

# A receiver's answer to a refused delivery (4xx): read this much of it, keep this much.
MAX_BODY_BYTES = 4096
MAX_EXCERPT_CHARS = 300
# httpx's keep-alive expiry, which the sender had: an idle connection is closed after this.
KEEPALIVE_SECONDS = 5.0


class WebhookPoster:
    """POSTs a body to a receiver; `post` returns a 2xx status or raises DeliveryFailed. Open
    it with `async with` inside the event loop that uses it."""

    def __init__(self, timeout: float, max_connections: int) -> None:
        self.timeout = timeout
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhookPoster:
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0,
                                         use_dns_cache=False,
                                         keepalive_timeout=KEEPALIVE_SECONDS)
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout,
                                        sock_read=self.timeout)
        # No cookie jar: a receiver's cookies must not travel to the next attempt.
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                              cookie_jar=aiohttp.DummyCookieJar(),
                                              auto_decompress=True)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """One attempt. A 4xx's reason carries an excerpt of what the receiver said."""
        assert self._session is not None, "WebhookPoster used outside `async with`"
        try:
            async with self._session.post(url, data=body, headers=headers,
                                          allow_redirects=False) as response:
                status = response.status
                if 200 <= status < 300:
                    return status
                reason = f"HTTP {status}"
                if 400 <= status < 500:
                    # The receiver refused the request itself: say why, as it said it.
                    excerpt = response_excerpt(await _read_at_most(response, MAX_BODY_BYTES))
                    if excerpt:
                        reason += f": {excerpt}"
        except aiohttp.ClientError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
        raise DeliveryFailed(reason, status)


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most `limit` bytes of a response's body: a receiver's error page may be large."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def response_excerpt(body: bytes, max_chars: int = MAX_EXCERPT_CHARS) -> str:
    """What a receiver answered, fit for the delivery log: decoded leniently, control
    characters and runs of white space made single spaces, numbers masked (kit.privacy),
    cut to `max_chars`."""
    text = body.decode("utf-8", errors="replace")
    text = "".join(c if c.isprintable() else " " for c in text)
    text = " ".join(text.split())
    text = scrub(text)
    return text if len(text) <= max_chars else text[:max_chars - 1] + "…"
