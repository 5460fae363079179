"""HTTP/2 on a real server (both transports): ALPN h2 over TLS with HTTP/1.1 fallback, h2c prior
knowledge, streamed bodies both ways under flow control, trailers, limits and shutdown; clients are
httpx (``http2=True``), curl, and a raw h2 connection on a socket for what httpx cannot send."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import threading
import time
from typing import Any

import h2.events as ev
import httpx
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.settings import SettingCodes
from hyperframe.frame import DataFrame, Frame, GoAwayFrame

from tests.server.test_tls import tls_options


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reports the scope's version, method, path and extensions, and the request body's size;
    ``/big`` answers with 1 MB streamed in 64 KB chunks; ``/trailers`` ends with trailers."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(16):
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    trailers = path == "/trailers"
    report = {
        "http_version": scope["http_version"],
        "method": scope["method"],
        "path": path,
        "scheme": scope["scheme"],
        "size": size,
        "host": dict(scope["headers"]).get(b"host", b"").decode(),
        "extensions": sorted(scope.get("extensions", {})),
    }
    await send({"type": "http.response.start", "status": 200, "trailers": trailers, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(report).encode()})
    if trailers:
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"42")]})


def tls_client(certificates: Any, http2: bool = True) -> httpx.Client:
    return httpx.Client(http2=http2, verify=certificates.client_context(), timeout=30)


def test_alpn_h2_over_tls(run_server: Any, certificates: Any) -> None:
    with (
        run_server(echo_app, **tls_options(certificates)) as server,
        tls_client(certificates) as client,
    ):
        url = f"https://127.0.0.1:{server.port}"
        response = client.get(url + "/a%20b?q=1")
        assert response.http_version == "HTTP/2"
        report = response.json()
        assert report["http_version"] == "2" and report["path"] == "/a b"
        assert report["scheme"] == "https" and report["host"] == f"127.0.0.1:{server.port}"
        assert report["extensions"] == ["http.response.trailers", "tls"]
        assert "server" in response.headers and "date" in response.headers
        # A 1 MB upload and a 1 MB download: both more than one window.
        upload = client.post(url + "/", content=b"u" * 1_000_000)
        assert upload.json()["size"] == 1_000_000
        download = client.get(url + "/big")
        assert download.content == b"x" * (16 * 65536)


def test_http11_fallback_and_no_http2(run_server: Any, certificates: Any) -> None:
    with (
        run_server(echo_app, **tls_options(certificates)) as server,
        tls_client(certificates, http2=False) as client,
    ):
        response = client.get(f"https://127.0.0.1:{server.port}/")
        assert response.http_version == "HTTP/1.1" and response.json()["http_version"] == "1.1"
    with (
        run_server(echo_app, **tls_options(certificates, http2=False)) as server,
        tls_client(certificates) as client,
    ):
        response = client.get(f"https://127.0.0.1:{server.port}/")
        assert response.http_version == "HTTP/1.1"  # h2 not offered in ALPN


def test_h2c_prior_knowledge_beside_http11(run_server: Any) -> None:
    with run_server(echo_app, h2c=True) as server:
        with httpx.Client(http1=False, http2=True) as client:
            response = client.post(server.url + "/p", content=b"abc")
            assert response.http_version == "HTTP/2" and response.json()["size"] == 3
            assert response.json()["scheme"] == "http"
        with httpx.Client() as client:  # the same port still speaks HTTP/1.1
            response = client.get(server.url + "/")
            assert response.http_version == "HTTP/1.1"


def test_h2c_is_off_by_default(run_server: Any) -> None:
    with (
        run_server(echo_app) as server,
        httpx.Client(http1=False, http2=True) as client,
        pytest.raises(httpx.HTTPError),
    ):
        client.get(server.url + "/")


def test_many_concurrent_streams_on_one_connection(run_server: Any, certificates: Any) -> None:
    async def main(port: int) -> list[int]:
        async with httpx.AsyncClient(
            http2=True, verify=certificates.client_context(), timeout=30
        ) as client:
            url = f"https://127.0.0.1:{port}/"
            responses = await asyncio.gather(
                *(client.post(url, content=b"b" * i) for i in range(200))
            )
            assert {r.http_version for r in responses} == {"HTTP/2"}
            return [r.json()["size"] for r in responses]

    with run_server(echo_app, **tls_options(certificates)) as server:
        assert asyncio.run(main(server.port)) == list(range(200))


def test_curl_http2(run_server: Any, certificates: Any) -> None:
    with run_server(echo_app, h2c=True, **tls_options(certificates)) as server:
        result = subprocess.run(
            [
                "curl",
                "-s",
                "--http2",
                "--cacert",
                str(certificates.ca),
                f"https://127.0.0.1:{server.port}/c",
                "-w",
                "%{http_version}",
            ],
            capture_output=True,
            check=True,
            timeout=20,
        )
        assert result.stdout.endswith(b"}2") and b'"http_version": "2"' in result.stdout


# --- a raw h2 client on a socket, for what httpx does not do ---
class RawClient:
    """h2's client connection on a cleartext socket (h2c prior knowledge)."""

    def __init__(self, port: int, **settings: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings({getattr(SettingCodes, k): v for k, v in settings.items()})
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        with contextlib.suppress(ConnectionError):  # closed: what it sent before is still read
            self.sock.sendall(data)

    def request(self, stream_id: int, path: str = "/", end: bool = True) -> None:
        headers = [
            (b":method", b"GET"),
            (b":path", path.encode()),
            (b":scheme", b"http"),
            (b":authority", b"t"),
        ]
        self.conn.send_headers(stream_id, headers, end_stream=end)
        self.flush()

    def until(self, predicate: Any) -> list[ev.Event]:
        """Read events until ``predicate(event)`` holds for one; return all read."""
        seen: list[ev.Event] = []
        while True:
            data = self.sock.recv(65536)
            if not data:
                return seen
            events = self.conn.receive_data(data)
            self.flush()
            seen += events
            if any(predicate(e) for e in events):
                return seen


def test_trailers_reach_the_client(run_server: Any) -> None:
    with run_server(echo_app, h2c=True) as server:
        client = RawClient(server.port)
        client.request(1, "/trailers")
        events = client.until(lambda e: isinstance(e, ev.StreamEnded))
        trailers = [e for e in events if isinstance(e, ev.TrailersReceived)]
        assert trailers and (b"x-sum", b"42") in trailers[0].headers


def test_a_zero_window_held_forever_resets_the_stream(run_server: Any) -> None:
    gone = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.body", "body": b"x" * 100, "more_body": True})
        except OSError:
            gone.set()
            raise

    with run_server(app, h2c=True, timeout_h2_window=0.3) as server:
        client = RawClient(server.port, INITIAL_WINDOW_SIZE=0)
        client.request(1)
        events = client.until(lambda e: isinstance(e, ev.StreamReset))
        assert [e.error_code for e in events if isinstance(e, ev.StreamReset)] == [8]  # CANCEL
        assert gone.wait(5)  # the app's send() raised: it does not wait forever


def test_rapid_reset_gets_goaway_on_a_real_server(run_server: Any) -> None:
    started = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            started.append(1)
            await asyncio.sleep(1)  # an app that ignores the reset for a while

    with run_server(app, h2c=True, h2_max_concurrent_streams=10) as server:
        client = RawClient(server.port)
        headers = [
            (b":method", b"GET"),
            (b":path", b"/"),
            (b":scheme", b"http"),
            (b":authority", b"t"),
        ]
        for stream_id in range(1, 400, 2):
            client.conn.send_headers(stream_id, headers)
            client.conn.reset_stream(stream_id)
        client.flush()  # in one write, read by the server at once: it closes with nothing unread
        events = client.until(lambda e: isinstance(e, ev.ConnectionTerminated))
        goaway = [e for e in events if isinstance(e, ev.ConnectionTerminated)]
        assert goaway and goaway[0].error_code == 11  # ENHANCE_YOUR_CALM
        assert len(started) <= 10  # no more apps than the stream limit, ever


def test_bad_preface_with_h2c_is_http11_and_refused(run_server: Any) -> None:
    with (
        run_server(echo_app, h2c=True) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock,
    ):
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize(
    ("http2", "offered", "selected"),
    [
        (True, ["h2", "http/1.1"], "h2"),
        (True, ["http/1.1", "h2"], "h2"),  # our preference decides (RFC 7301 §3.2)
        (True, ["http/1.1"], "http/1.1"),
        (False, ["h2", "http/1.1"], "http/1.1"),
    ],
)
def test_alpn_selection(
    run_server: Any, certificates: Any, http2: bool, offered: list[str], selected: str
) -> None:
    with run_server(echo_app, **tls_options(certificates, http2=http2)) as server:
        context = certificates.client_context()
        context.set_alpn_protocols(offered)
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.selected_alpn_protocol() == selected


def read_frames(sock: socket.socket) -> list[Any]:
    """Every frame the server sends until it closes, parsed by hyperframe (h2's own client stops
    taking frames once it has seen a GOAWAY, even for streams the GOAWAY lets finish)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return parse_frames(data)


def read_frames_once(sock: socket.socket) -> list[Any]:
    """The frames of one read (whole frames: the server writes each batch in one write)."""
    return parse_frames(sock.recv(65536))


def parse_frames(data: bytes) -> list[Any]:
    """The whole frames in ``data``, in order."""
    frames = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames


def held_response(started: threading.Event, release: threading.Event, body: bytes) -> Any:
    """An app that sets ``started`` on a request and answers ``body`` once ``release`` is set."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


def test_graceful_shutdown_sends_goaway_and_lets_streams_finish(run_server: Any) -> None:
    started, release = threading.Event(), threading.Event()
    app = held_response(started, release, b"done")

    with run_server(app, h2c=True) as server:
        client = RawClient(server.port)
        client.request(1)
        assert started.wait(5)
        server.server.should_exit = True
        frames = []
        while not any(isinstance(f, GoAwayFrame) for f in frames):
            frames += read_frames_once(client.sock)
        (goaway,) = [f for f in frames if isinstance(f, GoAwayFrame)]
        assert (goaway.last_stream_id, goaway.error_code) == (1, 0)
        release.set()
        frames = read_frames(client.sock)  # then the server closes the connection
        data = [f for f in frames if isinstance(f, DataFrame) and f.stream_id == 1]
        assert b"".join(f.data for f in data) == b"done" and "END_STREAM" in data[-1].flags


def test_curl_finishes_a_response_across_a_graceful_shutdown(run_server: Any) -> None:
    started, release = threading.Event(), threading.Event()
    app = held_response(started, release, b"finished")

    with run_server(app, h2c=True) as server:
        curl = subprocess.Popen(
            ["curl", "-s", "--http2-prior-knowledge", f"{server.url}/slow"],
            stdout=subprocess.PIPE,
        )
        assert started.wait(10)
        server.server.should_exit = True
        time.sleep(0.2)  # the GOAWAY reaches curl before the response
        release.set()
        out, _ = curl.communicate(timeout=10)
        assert (curl.returncode, out) == (0, b"finished")


def test_idle_connection_gets_goaway_then_close(run_server: Any) -> None:
    with run_server(echo_app, h2c=True, timeout_keep_alive=0.2) as server:
        client = RawClient(server.port)
        client.request(1)
        frames = read_frames(client.sock)  # returns once the server closes
        goaways = [f for f in frames if isinstance(f, GoAwayFrame)]
        assert goaways and goaways[-1].error_code == 0 and goaways[-1].last_stream_id == 1


def test_limits_answer_per_stream_over_http2(run_server: Any, certificates: Any) -> None:
    options = tls_options(certificates, limit_request_headers=5, limit_request_body=10)
    with run_server(echo_app, **options) as server, tls_client(certificates) as client:
        url = f"https://127.0.0.1:{server.port}/"
        many = {f"x-{i}": "1" for i in range(10)}
        assert client.get(url, headers=many).status_code == 431
        assert client.post(url, content=b"y" * 11).status_code == 413
        ok = client.post(url, content=b"y" * 10)  # the same connection carries on
        assert ok.status_code == 200 and ok.json()["size"] == 10


def test_a_stream_whose_app_does_not_read_stalls_only_itself(run_server: Any) -> None:
    reading = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while scope["path"] == "/lazy" and not reading.is_set():
            await asyncio.sleep(0.01)  # reads nothing until told: its upload stalls at the window
        await echo_app(scope, receive, send)

    with run_server(app, h2c=True) as server:
        client = RawClient(server.port)
        post = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"t")]
        client.conn.send_headers(1, [*post, (b":path", b"/lazy")])
        client.conn.send_headers(3, [*post, (b":path", b"/busy")])
        client.flush()
        sent = {1: 0, 3: 0}
        while sent[3] < 600_000:  # stream 3 uploads 600 KB while stream 1 sits at its window
            for stream_id in (1, 3):
                room = min(client.conn.local_flow_control_window(stream_id), 16384)
                if room and sent[stream_id] < 600_000:
                    client.conn.send_data(stream_id, b"d" * room)
                    sent[stream_id] += room
            client.flush()
            while not client.conn.local_flow_control_window(3):  # stream or connection window
                client.until(lambda e: isinstance(e, ev.WindowUpdated))
        client.conn.end_stream(3)
        client.flush()
        events = client.until(lambda e: isinstance(e, ev.StreamEnded) and e.stream_id == 3)
        body = b"".join(e.data for e in events if isinstance(e, ev.DataReceived))
        assert json.loads(body)["size"] == sent[3] >= 600_000
        # Stream 1 got exactly its window, no more: its app has read nothing.
        assert sent[1] == 256 * 1024 and client.conn.local_flow_control_window(1) == 0


def test_twisted_ssl_endpoint_negotiates_h2(certificates: Any) -> None:
    from tests.server.test_endpoints import APP_DIR, free_port, serve

    port = free_port()
    description = (
        f"ssl:{port}:interface=127.0.0.1:privateKey={certificates.server_key}"
        f":certKey={certificates.server_cert}"
    )
    with (
        serve("_supervisor_apps:twisted_clock", *APP_DIR, "-e", description),
        tls_client(certificates) as client,
    ):
        response = client.get(f"https://127.0.0.1:{port}/")
    assert response.http_version == "HTTP/2" and response.text.endswith("via https")


def test_limit_concurrency_answers_503_on_the_stream(run_server: Any) -> None:
    release = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while not release.is_set():
            await asyncio.sleep(0.01)
        await echo_app(scope, receive, send)

    with run_server(app, h2c=True, limit_concurrency=1) as server:
        client = RawClient(server.port)
        client.request(1)
        client.request(3)  # stream 1's app is still running: one task is the limit
        events = client.until(lambda e: isinstance(e, ev.StreamEnded) and e.stream_id == 3)
        (head,) = [e for e in events if isinstance(e, ev.ResponseReceived)]
        assert head.stream_id == 3 and (b":status", b"503") in head.headers
        release.set()
        client.until(lambda e: isinstance(e, ev.StreamEnded) and e.stream_id == 1)


def test_h2load_many_streams_on_many_connections(run_server: Any) -> None:
    with run_server(echo_app, h2c=True) as server:
        result = subprocess.run(
            ["h2load", "-n", "3000", "-c", "6", "-m", "40", f"{server.url}/"],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
    assert "3000 succeeded, 0 failed, 0 errored, 0 timeout" in result.stdout
    assert "status codes: 3000 2xx" in result.stdout
