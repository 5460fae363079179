"""TLS: https and wss with a certificate made in the test, the ASGI ``tls`` scope extension,
client certificates, and the TLS options' errors."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server._wss_client import wss_session

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def tls_options(certificates: Any, **extra: Any) -> dict[str, Any]:
    """Config changes that serve TLS with the test certificate."""
    return {
        "ssl_certfile": str(certificates.server_cert),
        "ssl_keyfile": str(certificates.server_key),
        **extra,
    }


async def scope_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers (HTTP) or greets (WebSocket) with the scheme and the tls extension as JSON."""
    if scope["type"] == "lifespan":
        return
    tls = scope.get("extensions", {}).get("tls")
    if tls is not None:  # the channel binding is bytes: hex for JSON
        tls = {**tls, "tls_unique": tls["tls_unique"] and tls["tls_unique"].hex()}
    report = json.dumps({"scheme": scope["scheme"], "tls": tls})
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": report})
        await send({"type": "websocket.close"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": report.encode()})


def https_url(server: Any) -> str:
    return f"https://127.0.0.1:{server.port}/"


def test_https_request_carries_the_tls_extension(run_server: Any, certificates: Any) -> None:
    with (
        run_server(scope_echo, **tls_options(certificates)) as server,
        httpx.Client(verify=certificates.client_context()) as client,
    ):
        first = client.get(https_url(server)).json()
        second = client.get(https_url(server)).json()  # keep-alive, same connection
    assert first == second
    assert first["scheme"] == "https"
    tls = first["tls"]
    assert tls["server_cert"] == certificates.server_cert.read_text()
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == 0x0304  # TLS 1.3 (RFC 8446)
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)  # the TLS 1.3 suites


def test_plain_http_has_no_tls_extension(run_server: Any) -> None:
    with run_server(scope_echo) as server:
        report = httpx.get(server.url).json()
    assert report == {"scheme": "http", "tls": None}


def test_wss_over_tls(run_server: Any, certificates: Any) -> None:
    with run_server(scope_echo, **tls_options(certificates)) as server:
        session = wss_session(server.port, certificates.client_context())
    assert session.status == 101 and session.close_code == 1000
    report = json.loads(session.messages[0])
    assert report["scheme"] == "wss"
    assert report["tls"]["tls_version"] == 0x0304


def test_tls12_reports_version_and_cipher(run_server: Any, certificates: Any) -> None:
    context = certificates.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with run_server(scope_echo, **tls_options(certificates)) as server:
        tls = httpx.get(https_url(server), verify=context).json()["tls"]
    assert tls["tls_version"] == 0x0303
    assert tls["cipher_suite"] == 0xC02B  # TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (RFC 5289)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_unique_is_the_clients_channel_binding(
    run_server: Any, certificates: Any, version: ssl.TLSVersion, server_transport: str
) -> None:
    """The extension's ``tls_unique`` is the value the client's ssl computes for the same
    connection (RFC 5929's first Finished on TLS 1.2; what OpenSSL gives on TLS 1.3, where
    tls-unique is not defined), and another connection has another. Twisted has none."""
    context = certificates.client_context()
    context.maximum_version = version
    seen = []
    with run_server(scope_echo, **tls_options(certificates)) as server:
        for _ in range(2):
            # A one-thread client (see _wss_client): websockets' sync client reads on a thread
            # of its own, and its request (or a binding asked for meanwhile) was lost now and then.
            session = wss_session(server.port, context)
            ours = session.tls_unique
            report = json.loads(session.messages[0])
            if server_transport == "twisted":
                assert report["tls"]["tls_unique"] is None
                return
            assert ours and report["tls"]["tls_unique"] == ours.hex()
            seen.append(ours)
    assert len(seen[0]) == (12 if version == ssl.TLSVersion.TLSv1_2 else 48)
    assert seen[0] != seen[1]


def test_required_client_certificate(run_server: Any, certificates: Any) -> None:
    options = tls_options(certificates, ssl_ca_certs=str(certificates.ca), ssl_cert_reqs="2")
    with run_server(scope_echo, **options) as server:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            # TLS 1.3: the server's refusal may only be seen on the first read.
            httpx.get(https_url(server), verify=certificates.client_context())
        context = certificates.client_context(with_certificate=True)
        tls = httpx.get(https_url(server), verify=context).json()["tls"]
    assert tls["client_cert_name"] == "CN=alice,O=Crossway Tests"
    assert tls["client_cert_chain"] == [certificates.client_cert.read_text()]
    assert tls["client_cert_error"] is None


def test_optional_client_certificate(run_server: Any, certificates: Any) -> None:
    options = tls_options(certificates, ssl_ca_certs=str(certificates.ca), ssl_cert_reqs="optional")
    with run_server(scope_echo, **options) as server:
        anonymous = httpx.get(https_url(server), verify=certificates.client_context()).json()
        context = certificates.client_context(with_certificate=True)
        alice = httpx.get(https_url(server), verify=context).json()
    assert anonymous["tls"]["client_cert_name"] is None
    assert alice["tls"]["client_cert_name"] == "CN=alice,O=Crossway Tests"


def test_encrypted_key_with_password(run_server: Any, certificates: Any) -> None:
    options = tls_options(
        certificates, ssl_keyfile=str(certificates.encrypted_key), ssl_keyfile_password="secret"
    )
    with run_server(scope_echo, **options) as server:
        report = httpx.get(https_url(server), verify=certificates.client_context()).json()
    assert report["scheme"] == "https"


def test_slow_tls_handshake_is_closed(run_server: Any, certificates: Any) -> None:
    options = tls_options(certificates, timeout_tls_handshake=0.3)
    with run_server(scope_echo, **options) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        with sock:
            sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
            assert sock.recv(1024) == b""  # closed by the server after the handshake timeout


def test_bad_tls_options_fail_startup_with_advice(certificates: Any, tmp_path: Path) -> None:
    def start(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "asgi_server", "examples.hello:app", *args]
        return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)

    missing = start("--port", "0", "--ssl-certfile", str(tmp_path / "missing.pem"))
    assert missing.returncode == 3
    assert "check --ssl-certfile" in missing.stderr
    args = ("--ssl-certfile", str(certificates.server_cert), "--ssl-keyfile")
    args += (str(certificates.server_key), "--ssl-cert-reqs", "always")
    wrong = start("--port", "0", *args)
    assert wrong.returncode == 3
    assert "use none, optional or required" in wrong.stderr
    tls = ("--ssl-certfile", str(certificates.server_cert), "--ssl-keyfile")
    tls += (str(certificates.server_key),)
    negative = start("--port", "0", *tls, "--ssl-session-tickets", "-1")
    assert negative.returncode == 3
    assert "use 0 or more" in negative.stderr
    twisted = start("--port", "0", *tls, "--ssl-session-tickets", "0", "--transport", "twisted")
    assert twisted.returncode == 3
    assert "--ssl-session-tickets needs the asyncio transport" in twisted.stderr
