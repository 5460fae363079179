"""WAMP routers side by side: Crossway's consumers.wamp beside Crossbar.io 26.10.1.

Questions: router-bound pub/sub fan-out to 100 raw subscribers (deliveries/s, router CPU per
delivery), sequential RPC (calls/s, p50) and 64 calls in flight (calls/s, router CPU per call),
on JSON and msgpack; and the same fan-out across two Crossway processes on Redis (publisher on
one, subscribers on the other). One router process each, pinned to core 0; the clients (this
process) run on core 1. The clients are raw: a WebSocket frame parser that counts EVENT frames
without decoding them, so the router, not the client, is the bottleneck.

Crossbar.io installs into its own git-ignored venv, ``benchmarks/.peers/crossbar`` (made on the
first run with ``pip install crossbar==26.10.1``): a benchmark opponent, never a dependency.

Usage: ``.venv/bin/python -m benchmarks.wamp [--seconds 3] [--rounds 1]``: each round runs
Crossbar, then Crossway; the table gives medians and each round's ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack

from benchmarks._common import (
    HOST,
    ROOT,
    free_port,
    group_cpu_seconds,
    load_average,
    start_server,
)

CROSSBAR_VENV = ROOT / "benchmarks" / ".peers" / "crossbar"
CROSSBAR_VERSION = "26.10.1"
SUBSCRIBERS = 100
WINDOW = 20  # publications in flight before the publisher waits for the subscribers
ROLES = {"roles": {"subscriber": {}, "publisher": {}, "caller": {}, "callee": {}}}


class Codec:
    """A WAMP serializer as the raw clients use it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.subprotocol = f"wamp.2.{name}"
        self.opcode = 1 if name == "json" else 2
        if name == "json":
            self.encode: Callable[[Any], bytes] = lambda m: json.dumps(m).encode()
            self.decode: Callable[[bytes], Any] = json.loads
        else:
            self.encode = msgpack.packb
            self.decode = msgpack.unpackb


def ws_frame(payload: bytes, opcode: int) -> bytes:
    """A masked client frame; the zero mask key makes masking a no-op (RFC 6455 allows it)."""
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    elif size < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class Tally:
    """Deliveries counted across every subscriber, and a waiter for a target."""

    def __init__(self) -> None:
        self.total = 0
        self.target = 0
        self.waiter: asyncio.Future[None] | None = None

    def add(self, count: int) -> None:
        self.total += count
        if self.waiter is not None and self.total >= self.target and not self.waiter.done():
            self.waiter.set_result(None)


class RawWamp(asyncio.Protocol):
    """A WAMP client over a hand-rolled WebSocket: decodes messages, or only counts frames."""

    def __init__(self, codec: Codec, tally: Tally | None = None) -> None:
        self.codec = codec
        self.tally = tally
        self.counting = False
        self.buffer = bytearray()
        self.open = asyncio.get_running_loop().create_future()
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.on_message: Callable[[Any], None] | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {self.codec.subprotocol}"
                "\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.open.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.open.set_exception(RuntimeError(bytes(buffer[:200]).decode()))
                return
            del buffer[: end + 4]
            self.open.set_result(None)
        position, size, frames = 0, len(buffer), 0
        while size - position >= 2:
            length, header = buffer[position + 1] & 0x7F, 2
            if length == 126:
                if size - position < 4:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 4], "big"), 4
            elif length == 127:
                if size - position < 10:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 10], "big"), 10
            if size - position < header + length:
                break
            opcode = buffer[position] & 0x0F
            if opcode >= 8:  # control: answer a ping, ignore the rest
                if opcode == 9:
                    start = position + header
                    self.transport.write(ws_frame(bytes(buffer[start : start + length]), 10))
            elif self.counting:
                frames += 1
            else:
                start = position + header
                self.deliver(self.codec.decode(bytes(buffer[start : start + length])))
            position += header + length
        del buffer[:position]
        if frames and self.tally is not None:
            self.tally.add(frames)

    def deliver(self, message: Any) -> None:
        if self.on_message is not None:
            self.on_message(message)
        else:
            self.inbox.put_nowait(message)

    def send(self, message: Any) -> None:
        self.transport.write(ws_frame(self.codec.encode(message), self.codec.opcode))

    async def ask(self, message: Any) -> Any:
        self.send(message)
        return await asyncio.wait_for(self.inbox.get(), 10)


async def join(port: int, codec: Codec, tally: Tally | None = None) -> RawWamp:
    """A raw client joined to realm1."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: RawWamp(codec, tally), HOST, port)
    await asyncio.wait_for(client.open, 10)
    welcome = await client.ask([1, "realm1", ROLES])
    assert welcome[0] == 2, welcome
    return client


async def fan_out(
    pub_port: int, sub_port: int, codec: Codec, seconds: float, pgids: list[int]
) -> dict[str, float]:
    """Deliveries/s to SUBSCRIBERS raw subscribers and router CPU microseconds per delivery."""
    tally = Tally()
    subscribers = [await join(sub_port, codec, tally) for _ in range(SUBSCRIBERS)]
    for subscriber in subscribers:
        assert (await subscriber.ask([32, 1, {}, "com.bench.fan"]))[0] == 33
        subscriber.counting = True
    publisher = await join(pub_port, codec)
    loop = asyncio.get_running_loop()
    publication = [16, 1, {}, "com.bench.fan", ["hello", 12345]]
    frame = ws_frame(codec.encode(publication), codec.opcode)
    published = 0
    if sub_port != pub_port:  # another process: wait until the subscription reached it
        deadline = time.monotonic() + 10
        while tally.total == 0 and time.monotonic() < deadline:
            publisher.transport.write(frame)
            published += 1
            await asyncio.sleep(0.05)
    tally.total = published = 0

    async def run(duration: float) -> None:
        nonlocal published
        end = loop.time() + duration
        while loop.time() < end:
            publisher.transport.write(frame * 5)
            published += 5
            tally.target = (published - WINDOW) * SUBSCRIBERS
            if tally.total < tally.target:
                tally.waiter = loop.create_future()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tally.waiter, 5)

    await run(1.0)  # warm-up
    start, count, cpu = time.perf_counter(), tally.total, sum(map(group_cpu_seconds, pgids))
    await run(seconds)
    elapsed = time.perf_counter() - start
    delivered = tally.total - count
    used = sum(map(group_cpu_seconds, pgids)) - cpu
    for client in [*subscribers, publisher]:
        client.transport.close()
    return {"deliveries/s": delivered / elapsed, "cpu_us/delivery": used / delivered * 1e6}


async def rpc(
    port: int, codec: Codec, seconds: float, in_flight: int, pgids: list[int]
) -> dict[str, float]:
    """Calls/s, p50 latency (ms) and router CPU microseconds per call with ``in_flight`` calls."""
    callee = await join(port, codec)
    assert (await callee.ask([64, 1, {}, "com.bench.echo"]))[0] == 65
    callee.on_message = lambda m: callee.send([70, m[1], {}, m[4] if len(m) > 4 else []])
    caller = await join(port, codec)
    waiting: dict[int, tuple[float, asyncio.Future[None]]] = {}
    latencies: list[float] = []

    def answered(message: Any) -> None:
        sent, future = waiting.pop(message[1])
        latencies.append(time.perf_counter() - sent)
        future.set_result(None)

    caller.on_message = answered
    loop = asyncio.get_running_loop()
    request = 0

    async def worker(end: float) -> None:
        nonlocal request
        while loop.time() < end:
            request += 1
            future = loop.create_future()
            waiting[request] = (time.perf_counter(), future)
            caller.send([48, request, {}, "com.bench.echo", [request]])
            await future

    async def run(duration: float) -> None:
        end = loop.time() + duration
        await asyncio.gather(*(worker(end) for _ in range(in_flight)))

    await run(1.0)
    latencies.clear()
    start, cpu = time.perf_counter(), sum(map(group_cpu_seconds, pgids))
    await run(seconds)
    elapsed = time.perf_counter() - start
    used = sum(map(group_cpu_seconds, pgids)) - cpu
    calls = len(latencies)
    callee.transport.close()
    caller.transport.close()
    return {
        "calls/s": calls / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "cpu_us/call": used / calls * 1e6,
    }


# --- the routers -----------------------------------------------------------------------------


def ensure_crossbar() -> Path:
    """The crossbar executable, installed into its own venv on the first run."""
    crossbar = CROSSBAR_VENV / "bin" / "crossbar"
    if not crossbar.exists():
        print(f"installing crossbar=={CROSSBAR_VERSION} into {CROSSBAR_VENV} (once)", flush=True)
        subprocess.run(
            [shutil.which("python3") or sys.executable, "-m", "venv", CROSSBAR_VENV], check=True
        )
        pip = [CROSSBAR_VENV / "bin" / "python", "-m", "pip", "install", "-q"]
        subprocess.run([*pip, f"crossbar=={CROSSBAR_VERSION}"], check=True)
    return crossbar


def crossbar_config(port: int) -> dict[str, Any]:
    """One router worker, realm1, anonymous may do anything, JSON and msgpack."""
    allow = {"call": True, "register": True, "publish": True, "subscribe": True}
    permission = {"uri": "", "match": "prefix", "allow": allow, "cache": True}
    paths = {
        "/": {"type": "static", "directory": "web"},
        "ws": {"type": "websocket", "serializers": ["json", "msgpack"]},
    }
    transport = {
        "type": "web",
        "endpoint": {"type": "tcp", "port": port, "interface": HOST},
        "paths": paths,
    }
    realm = {"name": "realm1", "roles": [{"name": "anonymous", "permissions": [permission]}]}
    return {
        "version": 2,
        "controller": {},
        "workers": [{"type": "router", "realms": [realm], "transports": [transport]}],
    }


@contextlib.contextmanager
def crossbar(port: int) -> Iterator[Any]:
    binary = ensure_crossbar()
    with tempfile.TemporaryDirectory(prefix="crossbar-") as node:
        (Path(node) / "web").mkdir()
        (Path(node) / "web" / "index.html").write_text("ok")
        (Path(node) / "config.json").write_text(json.dumps(crossbar_config(port)))
        command = [
            binary,
            "start",
            "--cbdir",
            node,
            "--config",
            "config.json",
            "--loglevel",
            "warn",
        ]
        with start_server("crossbar", command, port, cpu=0, ready_timeout=60) as server:
            yield server


@contextlib.contextmanager
def crossway(port: int, layer_url: str | None = None) -> Iterator[Any]:
    command = [sys.executable, "-m", "asgi_server", "benchmarks.wamp_app:application"]
    command += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    saved = os.environ.get("CHANNEL_LAYERS_URL")
    if layer_url:
        os.environ["CHANNEL_LAYERS_URL"] = layer_url
    try:
        with start_server(f"crossway-{port}", command, port, cpu=0) as server:
            yield server
    finally:
        if layer_url:
            if saved is None:
                os.environ.pop("CHANNEL_LAYERS_URL", None)
            else:
                os.environ["CHANNEL_LAYERS_URL"] = saved


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        yield f"redis://{HOST}:{port}/0"
    finally:
        process.terminate()
        process.wait()


async def measure(port: int, pgids: list[int], seconds: float) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name in ("json", "msgpack"):
        codec = Codec(name)
        results[f"fan-out {name}"] = await fan_out(port, port, codec, seconds, pgids)
        results[f"rpc sequential {name}"] = await rpc(port, codec, seconds, 1, pgids)
        results[f"rpc 64 in flight {name}"] = await rpc(port, codec, seconds, 64, pgids)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--rounds", type=int, default=1, help="Crossbar then Crossway, this many times"
    )
    options = parser.parse_args()
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {1})  # the clients on core 1, the routers on core 0
    print(f"load average before: {load_average()}")
    theirs_rounds: list[dict[str, dict[str, float]]] = []
    ours_rounds: list[dict[str, dict[str, float]]] = []
    for _ in range(options.rounds):  # interleaved: the machine's load drifts between rounds
        port = free_port()
        with crossbar(port) as server:
            theirs_rounds.append(asyncio.run(measure(port, [server.process.pid], options.seconds)))
        port = free_port()
        with crossway(port) as server:
            ours_rounds.append(asyncio.run(measure(port, [server.process.pid], options.seconds)))
        print(f"round {len(ours_rounds)} done, load average {load_average()}", flush=True)
    with redis_server() as url:
        layer = f"{url}?prefix=bench-{os.urandom(3).hex()}"
        port_a, port_b = free_port(), free_port()
        with crossway(port_a, layer) as a, crossway(port_b, layer) as b:
            pgids = [a.process.pid, b.process.pid]
            two = {
                f"fan-out {name} across 2 processes": asyncio.run(
                    fan_out(port_a, port_b, Codec(name), options.seconds, pgids)
                )
                for name in ("json", "msgpack")
            }
    report(theirs_rounds, ours_rounds, two)
    print(f"load average after: {load_average()}")


def report(
    theirs: list[dict[str, dict[str, float]]],
    ours: list[dict[str, dict[str, float]]],
    two: dict[str, dict[str, float]],
) -> None:
    """Medians over the rounds; the ratio is the median of each round's ratio (higher is
    better for Crossway: rates divided, latencies and CPU per unit inverted)."""
    print(f"\n| scenario | metric | Crossbar.io {CROSSBAR_VERSION} | Crossway | ratio |")
    print("|---|---|---:|---:|---:|")
    for scenario, values in ours[0].items():
        for metric in values:
            peer = [run[scenario][metric] for run in theirs]
            value = [run[scenario][metric] for run in ours]
            lower_is_better = metric.startswith(("cpu", "p50"))
            ratios = [p / v if lower_is_better else v / p for p, v in zip(peer, value, strict=True)]
            print(
                f"| {scenario} | {metric} | {statistics.median(peer):,.1f} |"
                f" {statistics.median(value):,.1f} | {statistics.median(ratios):.2f}x"
                f" ({', '.join(f'{r:.2f}' for r in ratios)}) |"
            )
    for scenario, values in two.items():
        for metric, value in values.items():
            print(f"| {scenario} (Redis) | {metric} | - | {value:,.1f} | - |")


if __name__ == "__main__":
    main()
