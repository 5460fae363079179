"""Trusted proxy headers (right to left) and the access log (escaped, one line per request)."""

from __future__ import annotations

import logging
import socket
from typing import Any

import httpx
import pytest

from asgi_server.logs import escape
from asgi_server.proxy_headers import ProxyTrust


def recorder(seen: list[tuple[Any, str]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append((scope["client"], scope["scheme"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


FORWARDED = {"X-Forwarded-For": "6.6.6.6, 1.2.3.4, 10.0.0.7", "X-Forwarded-Proto": "https"}


def test_trusted_proxy_headers_are_read_right_to_left(run_server: Any) -> None:
    seen: list[tuple[Any, str]] = []
    allow = "127.0.0.1, 10.0.0.0/8"
    with run_server(recorder(seen), forwarded_allow_ips=allow) as server:
        httpx.get(server.url, headers=FORWARDED)
    # 10.0.0.7 is a trusted proxy, so 1.2.3.4 is the client; 6.6.6.6 could be forged by it.
    assert seen == [(("1.2.3.4", 0), "https")]


def test_untrusted_peers_cannot_set_proxy_headers(run_server: Any) -> None:
    seen: list[tuple[Any, str]] = []
    with run_server(recorder(seen), forwarded_allow_ips="10.0.0.1") as server:
        httpx.get(server.url, headers=FORWARDED)
    with run_server(recorder(seen), proxy_headers=False) as server:
        httpx.get(server.url, headers=FORWARDED)
    assert [client[0] for client, _ in seen] == ["127.0.0.1", "127.0.0.1"]
    assert [scheme for _, scheme in seen] == ["http", "http"]


def test_proxy_trust_rules() -> None:
    trust = ProxyTrust("192.168.0.0/16,::1")
    assert trust.is_trusted("192.168.4.5") and trust.is_trusted("::1")
    assert not trust.is_trusted("10.1.1.1") and not trust.is_trusted("not-an-ip")
    assert ProxyTrust("*").is_trusted("8.8.8.8")
    headers = [(b"x-forwarded-for", b"192.168.1.1, 192.168.1.2")]
    # Every hop trusted: the leftmost address is the best we know.
    assert trust.resolve(("192.168.0.1", 5), "http", headers)[0] == ("192.168.1.1", 0)


def test_access_log_line_and_escaping(run_server: Any, caplog: Any, http_parser: str) -> None:
    seen: list[tuple[Any, str]] = []
    caplog.set_level(logging.INFO, logger="asgi_server.access")
    with run_server(recorder(seen), http=http_parser) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b'GET /a"b\\c?q=%e9 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
            sock.settimeout(5)
            while sock.recv(65536):
                pass
        httpx.get(server.url + "/plain")
        # A forged client address from a trusted proxy cannot fake the rest of the line.
        httpx.get(server.url + "/xff", headers={"X-Forwarded-For": 'x" 200 "GET /admin'})
    lines = [record.getMessage() for record in caplog.records if record.name.endswith("access")]
    assert len(lines) == 3
    assert '"GET /a\\"b\\\\c?q=%e9 HTTP/1.1" 200' in lines[0]
    assert lines[0].startswith("127.0.0.1:") and lines[0].endswith("ms")
    assert '"GET /plain HTTP/1.1" 200' in lines[1]
    assert lines[2].startswith('x\\" 200 \\"GET /admin:0 - "GET /xff HTTP/1.1" 200')


def test_access_log_off(run_server: Any, caplog: Any) -> None:
    seen: list[tuple[Any, str]] = []
    caplog.set_level(logging.INFO, logger="asgi_server.access")
    with run_server(recorder(seen), access_log=False) as server:
        httpx.get(server.url)
    assert not [record for record in caplog.records if record.name.endswith("access")]


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("a\nb", "a\\x0ab"), ("\x1b[31mred", "\\x1b[31mred"), ('q"', 'q\\"'), ("\x85", "\\x85")],
)
def test_escape(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped
