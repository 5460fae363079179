"""Chat end to end: the Channels tutorial's chat consumer, 100 clients in one room, Redis between.

The comparison a Channels user makes. Three stacks serve the same consumer
(``benchmarks/chat_e2e_app.py``), each one process pinned to core 0:

- ``daphne-channels``: Daphne + Channels + channels_redis (the peers' venv);
- ``uvicorn-channels``: Uvicorn (httptools, uvloop, websockets) + Channels + channels_redis;
- ``crossway``: asgi-server (httptools, uvloop) + consumers + Crossway's durable Redis layer.

A private redis-server (no persistence) and the load generator share core 1. The generator runs
in this process on uvloop with raw sockets: 100 WebSocket clients join one room; 5 of them are
senders, each sending a message and waiting for its own message to come back through the room
before sending the next. Every client counts the messages it receives: deliveries/s is their
sum over the measured seconds, the latency of a delivery runs from the send to its arrival at
that client (p50/p99 over all deliveries), and the server's CPU per delivery comes from /proc.
Each round starts every stack once (order reversed on odd rounds) with Redis flushed, warms up
for 1 s and measures for ``--seconds`` (default 10); medians of ``--rounds`` (default 3).

Run ``bash benchmarks/setup_peers.sh`` once, then ``.venv/bin/python -m benchmarks.chat_e2e``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvloop

from benchmarks._common import (
    OURS_BIN,
    PEERS_BIN,
    RESULTS_DIR,
    ROOT,
    free_port,
    group_cpu_seconds,
    load_average,
    pinned,
    require,
)

SERVER_CPU, LOAD_CPU = 0, 1
APP = "benchmarks.chat_e2e_app:application"
PATH = b"/ws/chat/bench/"
PREFIX = b'{"message": "'  # what json.dumps makes of the consumer's {"message": ...}
STACKS: dict[str, tuple[str, list[str]]] = {
    "daphne-channels": ("channels", [str(PEERS_BIN / "daphne"), "-b", "127.0.0.1", "-v", "0"]),
    "uvicorn-channels": (
        "channels",
        [
            str(PEERS_BIN / "uvicorn"),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--ws",
            "websockets",
        ],
    ),
    "crossway": ("crossway", [str(OURS_BIN / "python"), "-m", "asgi_server"]),
}


def server_command(stack: str, port: int) -> list[str]:
    """The command line that serves the chat app on ``port``."""
    base = STACKS[stack][1]
    if stack == "daphne-channels":
        return [*base, "-p", str(port), APP]
    quiet = "--no-access-log --log-level warning --lifespan off"
    extra = " --http httptools --loop uvloop" if stack == "crossway" else ""
    return [*base, APP, *f"--port {port} {quiet}{extra}".split()]


# --- the load generator ---------------------------------------------------------------------


def text_frame(payload: bytes) -> bytes:
    """A masked client text frame (RFC 6455 §5.3; a zero key leaves the payload as it is)."""
    assert len(payload) < 126
    return bytes((0x81, 0x80 | len(payload))) + b"\0\0\0\0" + payload


class Client(asyncio.Protocol):
    """One chat client: handshake, then counts the room's messages and times them."""

    def __init__(self, index: int, bench: Bench) -> None:
        self.index = index
        self.bench = bench
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.waiting = b""  # a sender's message on its way back

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(
            b"GET " + PATH + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        if not self.opened.done():
            head, sep, buffer = buffer.partition(b"\r\n\r\n")
            if not sep:
                self.buffer = head
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(head[:80].decode(errors="replace")))
                return
            self.opened.set_result(None)
        while len(buffer) >= 2:
            length = buffer[1] & 0x7F
            start = 2
            if length == 126:
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                break
            opcode, payload = buffer[0] & 0x0F, buffer[start : start + length]
            buffer = buffer[start + length :]
            if opcode == 1:
                self.bench.delivered(self, payload)
            elif opcode == 9 and self.transport is not None:  # ping: pong
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
        self.buffer = buffer

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))
        self.bench.lost += 1

    def send_next(self) -> None:
        """Send this sender's next message: ``index:sequence:send time in ns``."""
        self.bench.sequence += 1
        text = b"%d:%d:%d" % (self.index, self.bench.sequence, time.perf_counter_ns())
        self.waiting = text
        assert self.transport is not None
        self.transport.write(text_frame(PREFIX + text + b'"}'))


class Bench:
    """The room: counts deliveries and latencies while ``measuring``."""

    def __init__(self) -> None:
        self.measuring = False
        self.deliveries = 0
        self.latencies_ns: list[int] = []
        self.sequence = 0
        self.lost = 0
        self.bad = 0

    def delivered(self, client: Client, payload: bytes) -> None:
        if not payload.startswith(PREFIX):
            self.bad += 1
            return
        text = payload[len(PREFIX) : -2]
        if self.measuring:
            self.deliveries += 1
            sent = int(text.rpartition(b":")[2])
            self.latencies_ns.append(time.perf_counter_ns() - sent)
        if text == client.waiting:  # a sender's own message is back: send the next one
            client.send_next()


async def open_room(port: int, clients: int, bench: Bench) -> list[Client]:
    """Connect ``clients`` clients (each joins the room before its handshake completes)."""
    loop = asyncio.get_running_loop()
    room: list[Client] = []
    for start in range(0, clients, 20):
        batch = []
        for index in range(start, min(start + 20, clients)):
            _, client = await loop.create_connection(
                lambda i=index: Client(i, bench),  # type: ignore[misc]
                "127.0.0.1",
                port,
            )
            batch.append(client)
        await asyncio.wait_for(asyncio.gather(*(c.opened for c in batch)), 60)
        room += batch
    return room


async def chat_load(
    port: int, pgid: int, clients: int, senders: int, seconds: float
) -> dict[str, Any]:
    """Run the room for 1 s of warm-up and ``seconds`` measured; return the numbers."""
    bench = Bench()
    room = await open_room(port, clients, bench)
    for client in room[:senders]:
        client.send_next()
    await asyncio.sleep(1.0)
    cpu_before = group_cpu_seconds(pgid)
    bench.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    bench.measuring = False
    elapsed = time.perf_counter() - started
    cpu = group_cpu_seconds(pgid) - cpu_before
    for client in room:
        if client.transport is not None:
            client.transport.close()
    latencies = sorted(bench.latencies_ns)
    count = len(latencies)
    return {
        "deliveries_per_s": bench.deliveries / elapsed,
        "p50_ms": latencies[count // 2] / 1e6 if count else float("nan"),
        "p99_ms": latencies[int(count * 0.99)] / 1e6 if count else float("nan"),
        "cpu_us_per_delivery": cpu * 1e6 / bench.deliveries if bench.deliveries else float("nan"),
        "lost": bench.lost,
        "bad": bench.bad,
    }


# --- processes ------------------------------------------------------------------------------


@contextlib.contextmanager
def private_redis() -> Iterator[int]:
    """A redis-server without persistence on a free port, pinned to the load generator's core."""
    port = free_port()
    command = [str(OURS_BIN / "redis-server"), "--port", str(port), "--save", "", "--appendonly"]
    process = subprocess.Popen(
        pinned([*command, "no"], LOAD_CPU), stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def redis_command(port: int, command: bytes) -> bytes:
    """Send one inline command to Redis and return its reply line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command + b"\r\n")
        return sock.recv(1024)


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the chat route completes a WebSocket handshake."""
    request = (
        b"GET " + PATH + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited; see {log}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        ):
            sock.sendall(request)
            if sock.recv(64).startswith(b"HTTP/1.1 101"):
                return
        time.sleep(0.2)
    sys.exit(f"the server did not answer a WebSocket handshake in 60 s; see {log}")


def measure(stack: str, redis_port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start ``stack``, run the room against it, stop it."""
    redis_command(redis_port, b"FLUSHALL")
    port = free_port()
    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"chat-{stack}-{port}.log"
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        CHAT_STACK=STACKS[stack][0],
        CHAT_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            pinned(server_command(stack, port), SERVER_CPU),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_ready(port, process, log)
        load = chat_load(port, process.pid, args.clients, args.senders, args.seconds)
        result = uvloop.run(load)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    result["load"] = load_average()
    return result


def report(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The table of medians and each peer's ratio to ours (per round, then the median)."""
    lines = [
        f"{'stack':18s} {'deliveries/s':>13s} {'p50 ms':>8s} {'p99 ms':>8s} {'CPU us/deliv':>13s}"
        f" {'ours/this (deliv/s)':>20s} {'this/ours (CPU)':>16s}"
    ]
    ours = results.get("crossway")
    for stack, runs in results.items():

        def median(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(run[key] for run in runs)

        ratio = cpu_ratio = "-"
        if ours:
            pairs = list(zip(ours, runs, strict=True))
            rate = [a["deliveries_per_s"] / b["deliveries_per_s"] for a, b in pairs]
            cpu = [b["cpu_us_per_delivery"] / a["cpu_us_per_delivery"] for a, b in pairs]
            ratio, cpu_ratio = f"{statistics.median(rate):.2f}x", f"{statistics.median(cpu):.2f}x"
        lines.append(
            f"{stack:18s} {median('deliveries_per_s'):13,.0f} {median('p50_ms'):8.2f}"
            f" {median('p99_ms'):8.2f} {median('cpu_us_per_delivery'):13.1f}"
            f" {ratio:>20s} {cpu_ratio:>16s}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    """Run the interleaved rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--only", default=",".join(STACKS), help="stacks, comma-separated")
    args = parser.parse_args(argv)
    stacks = args.only.split(",")
    require(OURS_BIN / "redis-server", "the project venv provides redis-server (test extra)")
    if any(stack != "crossway" for stack in stacks):
        require(PEERS_BIN / "daphne", "run: bash benchmarks/setup_peers.sh")
    os.sched_setaffinity(0, {LOAD_CPU})
    results: dict[str, list[dict[str, Any]]] = {stack: [] for stack in stacks}
    with private_redis() as redis_port:
        for round_ in range(args.rounds):
            for stack in stacks if round_ % 2 == 0 else stacks[::-1]:
                result = measure(stack, redis_port, args)
                results[stack].append(result)
                print(f"round {round_} {stack}: {json.dumps(result)}", flush=True)
    lines = report(results)
    print("\n".join(lines))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS_DIR / f"chat_e2e-{stamp}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
