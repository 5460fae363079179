"""The HTTP bridge and static files: Crossway's ``--crossbar-config`` beside Crossbar.io itself.

Both servers run the same tutorial config (a static root, a ``ws`` WAMP path and a ``notify``
publisher path on realm1), one process pinned to core 0; the load runs here, on core 1.

- publisher: 10 keep-alive clients POST ``{"topic", "args": [client, n]}`` one after another
  for ``--seconds``; an autobahn-python subscriber (in this process) timestamps each EVENT:
  POST -> EVENT latency p50/p99 and POSTs/s.
- static (``--static``, needs ``wrk``): GET of a 1 KiB and a 1 MiB file, 10 s each, 16
  connections: requests/s. The same files are also served, in the same run, by servestatic's
  ``ServeStaticASGI`` and Starlette's ``StaticFiles`` on uvicorn (httptools, uvloop; one process
  on core 0, from the peers venv: ``bash benchmarks/setup_peers.sh``).

Crossbar.io runs when ``benchmarks/.peers/crossbar/bin/crossbar`` exists
(``python3 -m venv benchmarks/.peers/crossbar && benchmarks/.peers/crossbar/bin/pip install
crossbar``); otherwise only Crossway is measured. Run ``.venv/bin/python -m benchmarks.web_bridge``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import txaio

from benchmarks._common import OURS_BIN, PEERS_BIN, ROOT, free_port, pinned, start_server

txaio.use_asyncio()  # type: ignore[no-untyped-call]

from autobahn.asyncio import wamp as _wamp  # noqa: E402
from autobahn.asyncio import websocket as _websocket  # noqa: E402
from autobahn.wamp import types as _types  # noqa: E402

# autobahn's client classes are untyped
ApplicationSession: Any = _wamp.ApplicationSession
WampWebSocketClientFactory: Any = _websocket.WampWebSocketClientFactory
ComponentConfig: Any = _types.ComponentConfig

CROSSBAR = ROOT / "benchmarks" / ".peers" / "crossbar" / "bin" / "crossbar"
CLIENTS = 10

#: The static peers' ASGI apps, written beside the node's web/ and run by the peers' uvicorn.
PEER_APPS = """
import os
from servestatic import ServeStaticASGI
from starlette.staticfiles import StaticFiles

root = os.path.join(os.path.dirname(__file__), "web")
servestatic = ServeStaticASGI(None, root=root, index_file=True)
starlette = StaticFiles(directory=root, html=True)
"""
STATIC_PEERS = ("servestatic", "starlette")


def node(port: int) -> Path:
    """A tutorial node directory on ``port``: web/ with the test files, .crossbar/config.json."""
    root = Path(tempfile.mkdtemp(prefix="crossway-bridge-bench-"))
    (root / "web").mkdir()
    (root / "web" / "index.html").write_text("<h1>bench</h1>")
    (root / "web" / "1k.bin").write_bytes(os.urandom(1024))
    (root / "web" / "1m.bin").write_bytes(os.urandom(1 << 20))
    (root / ".crossbar").mkdir()
    allow = {"call": True, "register": True, "publish": True, "subscribe": True}
    config = {
        "version": 2,
        "controller": {},
        "workers": [
            {
                "type": "router",
                "realms": [
                    {
                        "name": "realm1",
                        "roles": [
                            {
                                "name": "anonymous",
                                "permissions": [{"uri": "", "match": "prefix", "allow": allow}],
                            }
                        ],
                    }
                ],
                "transports": [
                    {
                        "type": "web",
                        "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                        "paths": {
                            "/": {"type": "static", "directory": "../web"},
                            "ws": {"type": "websocket"},
                            "notify": {"type": "publisher", "realm": "realm1", "role": "anonymous"},
                        },
                    }
                ],
            }
        ],
    }
    (root / ".crossbar" / "config.json").write_text(json.dumps(config))
    (root / "peer_static.py").write_text(PEER_APPS)
    return root


class Subscriber(ApplicationSession):  # type: ignore[misc]
    """Records the arrival time of each (client, n) event."""

    arrivals: dict[tuple[int, int], int]
    joined: asyncio.Future[None]

    async def onJoin(self, details: Any) -> None:
        await self.subscribe(self.on_event, "bench.topic")
        self.joined.set_result(None)

    def on_event(self, client: int, n: int) -> None:
        self.arrivals[(client, n)] = time.perf_counter_ns()


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """The body after ``head``: Content-Length or chunked (Crossbar's Twisted answers chunked)."""
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if length:
        return await reader.readexactly(int(length[1]))
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        body += await reader.readexactly(size + 2)
        if size == 0:
            return body


Sent = dict[tuple[int, int], int]


async def post_loop(port: int, client: int, stop_at: float, sent: Sent) -> int:
    """One keep-alive client: POST, read the answer, repeat until ``stop_at``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    while time.monotonic() < stop_at:
        body = json.dumps({"topic": "bench.topic", "args": [client, n]}).encode()
        head = (
            f"POST /notify HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sent[(client, n)] = time.perf_counter_ns()
        writer.write(head + body)
        response = await reader.readuntil(b"\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 200"), response
        await read_body(reader, response)
        n += 1
    writer.close()
    return n


async def publisher(port: int, seconds: float) -> dict[str, float]:
    """POST -> EVENT latency and POSTs/s against the server on ``port``."""
    loop = asyncio.get_running_loop()
    session: list[Subscriber] = []

    def make() -> Subscriber:
        made = Subscriber(ComponentConfig("realm1"))
        made.arrivals, made.joined = {}, loop.create_future()
        session.append(made)
        return made

    factory = WampWebSocketClientFactory(make, url=f"ws://127.0.0.1:{port}/ws")
    await loop.create_connection(factory, "127.0.0.1", port)
    while not session:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(session[0].joined, 10)
    sent: Sent = {}
    await asyncio.gather(*(post_loop(port, c, time.monotonic() + 1, {}) for c in range(CLIENTS)))
    session[0].arrivals.clear()
    started = time.monotonic()
    counts = await asyncio.gather(
        *(post_loop(port, c, started + seconds, sent) for c in range(CLIENTS))
    )
    elapsed = time.monotonic() - started
    await asyncio.sleep(0.5)  # the last events
    arrivals = session[0].arrivals
    latencies = sorted((arrivals[key] - sent[key]) / 1e6 for key in sent if key in arrivals)
    session[0].leave()
    return {
        "posts_per_s": sum(counts) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "lost": len(sent) - len(latencies),
    }


def wrk(port: int, path: str) -> float:
    """Requests/s of ``wrk`` (pinned to core 1) on ``path``."""
    command = ["wrk", "-t1", "-c16", "-d10s", f"http://127.0.0.1:{port}{path}"]
    output = subprocess.run(pinned(command, 1), capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]


def measure(name: str, command: list[str], port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start one server and run the chosen measurements against it."""
    with start_server(name, command, port, cpu=0, ready_timeout=60):
        result: dict[str, Any] = asyncio.run(publisher(port, args.seconds))
        if args.static:
            result["static_1k_rps"] = wrk(port, "/1k.bin")
            result["static_1m_rps"] = wrk(port, "/1m.bin")
    return result


def static_peer(name: str, directory: Path, port: int) -> dict[str, Any]:
    """Requests/s of one static peer (``name`` in ``STATIC_PEERS``) on uvicorn."""
    uvicorn = [str(PEERS_BIN / "uvicorn"), f"peer_static:{name}", "--app-dir", str(directory)]
    options = ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    with start_server(name, [*uvicorn, *options], port, cpu=0, ready_timeout=60):
        return {"static_1k_rps": wrk(port, "/1k.bin"), "static_1m_rps": wrk(port, "/1m.bin")}


def report(results: dict[str, dict[str, Any]]) -> None:
    """Print each server's numbers and Crossway's ratio to each peer."""
    for name, numbers in results.items():
        print(name, {key: round(value, 2) for key, value in numbers.items()})
    ours = results["crossway"]
    for peer, numbers in results.items():
        for key, value in numbers.items():
            if peer != "crossway" and key != "lost" and value:
                print(f"{key}: crossway/{peer} = {ours[key] / value:.2f}")


def main() -> None:
    """Run both servers and print each one's numbers and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--static", action="store_true", help="also GET static files with wrk")
    args = parser.parse_args()
    if args.static and shutil.which("wrk") is None:
        raise SystemExit("--static needs wrk: apt-get install wrk")
    results = {}
    port = free_port()
    directory = node(port)
    config = str(directory / ".crossbar" / "config.json")
    ours = [str(OURS_BIN / "python"), "-m", "asgi_server", "--crossbar-config", config]
    results["crossway"] = measure("crossway", [*ours, "--no-access-log"], port, args)
    if CROSSBAR.exists():
        crossbar = [str(CROSSBAR), "start", "--cbdir", str(directory / ".crossbar")]
        results["crossbar"] = measure("crossbar", crossbar, port, args)
    else:
        print(f"{CROSSBAR} is missing: measuring Crossway only (see the docstring)")
    if args.static:
        if not (PEERS_BIN / "uvicorn").exists():
            raise SystemExit("the static peers need the peers venv: bash benchmarks/setup_peers.sh")
        for peer in STATIC_PEERS:
            results[peer] = static_peer(peer, directory, port)
    report(results)


if __name__ == "__main__":
    main()
