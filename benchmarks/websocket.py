"""WebSocket echo speed and idle memory: Crossway beside uvicorn, daphne, hypercorn and granian.

Every server runs :func:`app` below (an echo app; GET answers 200 so readiness can be polled),
one process pinned to core 0, access logs off. The load generator runs in this process, pinned to
core 1, on uvloop: raw sockets and pre-built masked frames, so that it is not the bottleneck.

- echo: 50 connections, each sends a 64-byte text message and waits for its echo before the next
  (10 s after a 1 s warm-up): messages/s, p50 and p99 round trip.
- idle: a fresh server, 2000 open connections doing nothing: RSS growth per connection (the
  server's whole process group, so granian's worker counts).
- hold (ours only, ``--hold N``): N idle connections held by one process, each then echoes once.

Rounds are interleaved (order reversed on odd rounds) and medians reported: the machine is
shared, so compare the ratios within one run. Run ``bash benchmarks/setup_peers.sh`` once, then
``.venv/bin/python -m benchmarks.websocket`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, cast

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Echo every WebSocket message back; answer HTTP GET with 200 (readiness probe)."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
    elif scope["type"] == "http":
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return


# --- the load generator ---------------------------------------------------------------------

MESSAGE = b"x" * 64
MASK = b"\x12\x34\x56\x78"
# A pre-built masked text frame (RFC 6455 §5.3): the client does no work per message.
FRAME = (
    bytes((0x81, 0x80 | len(MESSAGE)))
    + MASK
    + bytes(b ^ MASK[i % 4] for i, b in enumerate(MESSAGE))
)
ECHO_LENGTH = 2 + len(MESSAGE)  # the server's unmasked frame: 2-byte header + payload
HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Client(asyncio.Protocol):
    """One raw-socket WebSocket client: handshake, then echo round trips on demand."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.echo: asyncio.Future[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, hence no isinstance check.
        self.transport = stream = cast(asyncio.Transport, transport)
        stream.write(HANDSHAKE)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.open.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            if head.startswith(b"HTTP/1.1 101"):
                self.open.set_result(None)
            else:
                self.open.set_exception(RuntimeError(head.decode(errors="replace")))
        if self.echo is not None and len(self.buffer) >= ECHO_LENGTH:
            del self.buffer[:ECHO_LENGTH]
            echo, self.echo = self.echo, None
            echo.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for future in (self.open, self.echo):
            if future is not None and not future.done():
                future.set_exception(ConnectionError("server closed the connection"))

    async def round_trip(self) -> int:
        """Send the pre-built frame, wait for its echo; return the round trip in nanoseconds."""
        assert self.transport is not None
        self.echo = asyncio.get_running_loop().create_future()
        start = time.perf_counter_ns()
        self.transport.write(FRAME)
        await self.echo
        return time.perf_counter_ns() - start


async def connect(port: int, count: int, batch: int = 200) -> list[Client]:
    """Open ``count`` WebSocket connections, ``batch`` handshakes at a time."""
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    for start in range(0, count, batch):
        group = [
            (await loop.create_connection(Client, "127.0.0.1", port))[1]
            for _ in range(min(batch, count - start))
        ]
        await asyncio.gather(*(c.open for c in group))
        clients += group
    return clients


def close_all(clients: list[Client]) -> None:
    for client in clients:
        if client.transport is not None:
            client.transport.abort()


async def echo_load(
    port: int, connections: int, duration: float, warmup: float, cpu: Callable[[], float]
) -> dict[str, Any]:
    """Every connection echoes back to back; measure messages/s, round trips and the server's
    CPU time per message (``cpu()``: its CPU seconds so far) after warm-up."""
    clients = await connect(port, connections)
    latencies: list[int] = []
    measuring = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + warmup + duration

    async def run(client: Client) -> None:
        while loop.time() < deadline:
            elapsed = await client.round_trip()
            if measuring:
                latencies.append(elapsed)

    tasks = [loop.create_task(run(c)) for c in clients]
    await asyncio.sleep(warmup)
    measuring, began, cpu_began = True, time.perf_counter(), cpu()
    await asyncio.gather(*tasks)
    seconds, cpu_seconds = time.perf_counter() - began, cpu() - cpu_began
    close_all(clients)
    latencies.sort()
    return {
        "msgs_per_s": len(latencies) / seconds,
        "p50_ms": latencies[len(latencies) // 2] / 1e6,
        "p99_ms": latencies[int(len(latencies) * 0.99)] / 1e6,
        # CPU per message barely depends on how busy the shared machine is, unlike msgs/s.
        "cpu_us_per_msg": cpu_seconds / len(latencies) * 1e6,
    }


def group_rss(pgid: int) -> int:
    """Resident memory of every process in a process group, in bytes."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5 of stat: the process group
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: rss pages
        except (OSError, IndexError, ValueError):
            continue
    return total


async def idle_memory(port: int, pgid: int, connections: int) -> dict[str, Any]:
    """RSS growth per idle connection; then every connection echoes once, to prove it is alive."""
    close_all(await connect(port, 20))  # warm the server's code paths before the baseline
    await asyncio.sleep(0.5)
    before = group_rss(pgid)
    clients = await connect(port, connections)
    await asyncio.sleep(1.0)
    after = group_rss(pgid)
    await asyncio.gather(*(c.round_trip() for c in clients))
    alive = sum(not c.closed for c in clients)
    close_all(clients)
    return {
        "connections": connections,
        "alive": alive,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "kib_per_connection": (after - before) / connections / 1024,
    }


# --- the servers and the rounds ---------------------------------------------------------------

APP = "benchmarks.websocket:app"
SERVER_CPU, CLIENT_CPU = 0, 1
Command = Callable[[int], list[str]]


def _commands() -> dict[str, Command]:
    from benchmarks._common import OURS_BIN, PEERS_BIN

    # Paths in this repository have no spaces, so a split string keeps each command on a line.
    quiet = "--no-access-log --log-level warning"
    uvicorn = f"{PEERS_BIN}/uvicorn {APP} --http httptools --loop uvloop {quiet}"
    return {
        "ours": lambda port: (
            f"{OURS_BIN}/asgi-server {APP} --http httptools --loop uvloop {quiet} --port {port}"
        ).split(),
        "uvicorn-wsproto": lambda port: f"{uvicorn} --ws wsproto --port {port}".split(),
        "uvicorn-websockets": lambda port: f"{uvicorn} --ws websockets --port {port}".split(),
        "daphne": lambda port: f"{PEERS_BIN}/daphne -b 127.0.0.1 -p {port} -v 0 {APP}".split(),
        "hypercorn": lambda port: (
            f"{PEERS_BIN}/hypercorn -k uvloop -b 127.0.0.1:{port} --log-level warning {APP}"
        ).split(),
        "granian-uvloop": lambda port: (
            f"{PEERS_BIN}/granian --interface asgi --http 1 --loop uvloop --workers 1 {quiet} "
            f"--host 127.0.0.1 --port {port} {APP}"
        ).split(),
    }


# (ours, peer, minimum ratio): issue 3's echo target.
TARGET_PEER, TARGET_RATIO, TARGET_P99_MS, TARGET_KIB = "granian-uvloop", 1.2, 2.0, 15.0


def measure(name: str, args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    """Start one server, run one scenario against it, stop it."""
    from benchmarks import _common

    port = _common.free_port()
    cpu = SERVER_CPU if _common.can_pin() else None
    with _common.start_server(name, _commands()[name](port), port, cpu=cpu) as server:
        if scenario == "echo":
            pgid = server.process.pid
            coroutine = echo_load(
                port, args.connections, args.duration, 1.0, lambda: _common.group_cpu_seconds(pgid)
            )
        elif scenario == "idle":
            coroutine = idle_memory(port, server.process.pid, args.idle)
        else:
            coroutine = idle_memory(port, server.process.pid, args.hold)
        result: dict[str, Any] = asyncio.run(coroutine)
    result.update(server=name, scenario=scenario, load=_common.load_average())
    return result


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """Medians per server, the ratios to ours and the issue-3 targets."""
    lines = [
        f"echo ({args.connections} connections, 64-byte text, {args.duration:g} s), "
        f"median of {args.rounds} rounds:"
    ]
    lines.append(
        f"{'server':20} {'msgs/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/msg':>10} "
        f"{'ours/this':>9}"
    )
    echo = {
        name: {
            k: statistics.median(
                r[k] for r in results if r["server"] == name and r["scenario"] == "echo"
            )
            for k in ("msgs_per_s", "p50_ms", "p99_ms", "cpu_us_per_msg")
        }
        for name in args.servers
        if any(r["server"] == name and r["scenario"] == "echo" for r in results)
    }
    ours = echo.get("ours")
    for name, row in echo.items():
        ratio = f"{ours['msgs_per_s'] / row['msgs_per_s']:8.2f}x" if ours else ""
        lines.append(
            f"{name:20} {row['msgs_per_s']:9.0f} {row['p50_ms']:7.3f} {row['p99_ms']:7.3f} "
            f"{row['cpu_us_per_msg']:10.1f} {ratio}"
        )
    lines += ["", "idle memory (RSS growth of the server per open connection):"]
    for r in results:
        if r["scenario"] in ("idle", "hold"):
            lines.append(
                f"{r['server']:20} {r['kib_per_connection']:6.1f} KiB/connection "
                f"({r['rss_before_mib']:.1f} -> {r['rss_after_mib']:.1f} MiB, "
                f"{r['alive']}/{r['connections']} alive after echo)"
            )
    if ours and TARGET_PEER in echo:
        ratio = ours["msgs_per_s"] / echo[TARGET_PEER]["msgs_per_s"]
        met = ratio >= TARGET_RATIO and ours["p99_ms"] <= TARGET_P99_MS
        lines.append(
            f"\ntarget ours >= {TARGET_RATIO}x {TARGET_PEER} with p99 <= {TARGET_P99_MS} ms: "
            f"{ratio:.2f}x, p99 {ours['p99_ms']:.3f} ms: {'met' if met else 'MISSED'}"
        )
    for r in results:
        if r["server"] == "ours" and r["scenario"] == "idle":
            verdict = "met" if r["kib_per_connection"] <= TARGET_KIB else "MISSED"
            lines.append(f"target <= {TARGET_KIB} KiB per idle connection: {verdict}")
    print("\n".join(lines))
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of echo load")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--connections", type=int, default=50, help="echo connections")
    parser.add_argument("--idle", type=int, default=2000, help="idle connections (0: skip)")
    parser.add_argument("--hold", type=int, default=0, help="ours only: hold this many idle")
    parser.add_argument("--only", default="", help="comma-separated subset of the servers")
    args = parser.parse_args(argv)
    names = list(_commands())
    args.servers = [s for s in args.only.split(",") if s] or names
    for name in args.servers:
        if name not in names:
            parser.error(f"unknown server {name!r}; choose from {', '.join(names)}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the rounds, print the tables, save the raw results as JSON."""
    from benchmarks import _common

    args = parse_args(argv)
    _common.require(_common.PEERS_BIN / "uvicorn", "run `bash benchmarks/setup_peers.sh` first")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the client holds every socket
    if _common.can_pin():
        os.sched_setaffinity(0, {CLIENT_CPU})
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(f"{started}, load {_common.load_average()}, fd limit {hard}", flush=True)
    results: list[dict[str, Any]] = []
    try:
        for round_ in range(args.rounds):
            order = args.servers if round_ % 2 == 0 else args.servers[::-1]
            for name in order:
                results.append(measure(name, args, "echo"))
                r = results[-1]
                print(
                    f"  round {round_ + 1} {name:20} {r['msgs_per_s']:9.0f} msgs/s "
                    f"p50 {r['p50_ms']:.3f} p99 {r['p99_ms']:.3f} ms "
                    f"CPU {r['cpu_us_per_msg']:.1f} us/msg",
                    flush=True,
                )
        for name in args.servers if args.idle else []:
            results.append(measure(name, args, "idle"))
        if args.hold:
            results.append(measure("ours", args, "hold"))
    finally:
        _common.stop_all()
    lines = report(results, args)
    _common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = _common.RESULTS_DIR / f"websocket-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    out.write_text(
        json.dumps(
            {"started": started, "argv": sys.argv, "results": results, "table": lines}, indent=1
        )
    )
    print(f"raw results: {out}")


if __name__ == "__main__":
    main()
