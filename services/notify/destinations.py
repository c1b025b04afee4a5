"""Where notify may send. Webhook URLs come from subscribers and hotline callback URLs from
citizens' work orders, so both are untrusted: unchecked, a URL could make notify POST to a
port on its own machine or to a cloud metadata service (server-side request forgery).

Private ranges (10/8, 172.16/12, 192.168/16) stay allowed by default: the departments'
systems sit on the e-government network, which uses them. What is denied is set by
FQ_WEBHOOK_DENIED_NETWORKS."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import httpx


class Destinations:
    """Tells whether a URL may be sent to; `refusal` gives the reason when not."""

    def __init__(self, denied: Sequence[str]) -> None:
        self.denied = [ip_network(n, strict=False) for n in denied]

    def refusal_of_address(self, address: IPv4Address | IPv6Address) -> str | None:
        if isinstance(address, IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        for network in self.denied:
            if address.version == network.version and address in network:
                return f"{address} is in the denied network {network}"
        return None

    def refusal_of_literal(self, url: str) -> str | None:
        """For a URL whose host is an IP address: checked where it is given (at subscribe)."""
        try:
            address = ip_address(httpx.URL(url).host)
        except (ValueError, httpx.InvalidURL):
            return None
        return self.refusal_of_address(address)

    async def refusal(self, url: str) -> str | None:
        """Checked before every attempt, so a name that now resolves elsewhere is caught. A
        name that does not resolve is not refused here: the attempt fails and is retried."""
        parsed = httpx.URL(url)
        try:
            return self.refusal_of_address(ip_address(parsed.host))
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80),
                type=socket.SOCK_STREAM)
        except OSError:
            return None
        for info in infos:
            refusal = self.refusal_of_address(ip_address(info[4][0]))
            if refusal:
                return f"{parsed.host} resolves to {refusal}"
        return None
