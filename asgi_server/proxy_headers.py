"""Trusted proxy headers: X-Forwarded-For and X-Forwarded-Proto, read right to left.

A proxy appends the address it received the request from, so the rightmost entries of
X-Forwarded-For were written by the proxies closest to us. We walk the list from the right,
skipping proxies we trust; the first untrusted address is the client (anything further left
could have been forged by it). Headers from an untrusted peer are ignored entirely.
"""

from __future__ import annotations

import ipaddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyTrust:
    """Which peers may set proxy headers (``--forwarded-allow-ips``), and how to apply them."""

    def __init__(self, allow: str) -> None:
        entries = [entry.strip() for entry in allow.split(",") if entry.strip()]
        self.trust_all = "*" in entries
        self.networks: list[IPNetwork] = []
        self.literals: set[str] = set()  # non-IP names, e.g. a Unix socket's empty peer name
        for entry in entries:
            if entry == "*":
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.literals.add(entry)

    def is_trusted(self, host: str) -> bool:
        """Whether ``host`` (an address from the socket or from X-Forwarded-For) is trusted."""
        if self.trust_all or host in self.literals:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def resolve(
        self, client: tuple[str, int], scheme: str, headers: list[tuple[bytes, bytes]]
    ) -> tuple[tuple[str, int], str]:
        """The (client, scheme) a request from a trusted peer really came from. The caller
        checks ``is_trusted(peer)`` once per connection, not per request."""
        forwarded_for = forwarded_proto = None
        for name, value in headers:
            if name == b"x-forwarded-for":
                forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
            elif name == b"x-forwarded-proto":
                forwarded_proto = value
        if forwarded_proto is not None:
            # The rightmost value was set by the proxy that talks to us.
            proto = forwarded_proto.decode("latin-1").split(",")[-1].strip().lower()
            if proto in ("http", "https", "ws", "wss"):
                scheme = _match_scheme(scheme, proto)
        if forwarded_for is not None:
            client = (self._client_from(forwarded_for.decode("latin-1")), 0)
        return client, scheme

    def _client_from(self, forwarded_for: str) -> str:
        hosts = [host.strip() for host in forwarded_for.split(",") if host.strip()]
        for host in reversed(hosts):
            if not self.is_trusted(host):
                return host
        return hosts[0] if hosts else ""


def _match_scheme(scheme: str, proto: str) -> str:
    """Keep the scope's family (http or ws) and take security from the proxy's word."""
    secure = proto in ("https", "wss")
    if scheme in ("ws", "wss"):
        return "wss" if secure else "ws"
    return "https" if secure else "http"
