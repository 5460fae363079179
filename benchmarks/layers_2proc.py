"""send+receive across two processes: one sends, another receives, through a Redis layer.

The two-process row of issue 18 (``benchmarks/layers.py`` measures the one-loop case). For each
backend a sender process builds the layer, starts a receiver process of the same interpreter
(ours from .venv, channels_redis from benchmarks/.peers/venv), and sends it the one-loop case's
message (``{"type": "bench.message", "text": "hello", "n": 1}``), one awaited ``send`` after
another, for ``--seconds`` (after a warm-up of a tenth of that). One task in the receiver awaits
``receive`` in a loop and acks every WINDOW messages over the layer; the sender keeps at most two
windows unacked, so that both processes stay busy and no queue overflows (a pub/sub layer drops
what overflows), and waits for the last ack before it stops its clocks. Reported per backend:
msgs/s (messages acked / wall seconds), and each process's CPU microseconds per message
(``time.process_time`` over the measured phase); the ratio columns are medians of the per-round
ratios, wall and per CPU second (the machine is shared: the CPU ratio is the steadier one).

Backends are the Redis ones of ``benchmarks.layers.BACKENDS`` (the pub/sub pair by default).
Redis is a private redis-server without persistence on a free port, started here, unless
``REDIS_URL`` names one. ``--loop uvloop`` runs both processes of every backend on uvloop (the
default loop of our server and of Uvicorn; asyncio's own loop otherwise). ``--profile`` writes
cProfile stats of both processes (one extra round, not counted) to ``benchmarks/.results/``.

Usage: ``.venv/bin/python -m benchmarks.layers_2proc [--rounds 5] [--seconds 2] [--loop uvloop]
[--backends ...]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from benchmarks._common import free_port, load_average, run_child
from benchmarks.layers import BACKENDS, REDIS_URL, ROOT, close_layer, ensure_peers, make_layer

WINDOW = 100  # messages per ack
IN_FLIGHT = 2  # windows the sender may have unacked
ACK_TIMEOUT = 20.0  # a layer that lost a message never acks its window: stop rather than hang
MESSAGE = {"type": "bench.message", "text": "hello", "n": 1}  # as in layers.measure_send_receive
RESULTS = ROOT / "benchmarks" / ".results"
DEFAULT_BACKENDS = "channels-redis-pubsub,crossway-redis-pubsub"


# --- the receiver process ---------------------------------------------------------------------


async def receiver(spec: dict[str, Any]) -> None:
    """Receive on a new channel; ack every WINDOW messages; report CPU from mark to stop."""
    layer = make_layer(spec)
    channel = await layer.new_channel()
    done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def loop() -> None:
        count, cpu_started = 0, time.process_time()
        while True:
            message = await layer.receive(channel)
            kind = message["type"]
            if kind == "bench.message":
                count += 1
                if count % WINDOW == 0:
                    await layer.send(spec["ack"], {"type": "bench.ack"})
            elif kind == "bench.mark":  # the measured phase starts now
                count, cpu_started = 0, time.process_time()
                await layer.send(spec["ack"], {"type": "bench.ack"})
            elif kind == "bench.stop":
                done.set_result({"cpu": time.process_time() - cpu_started, "received": count})
                return

    task = asyncio.ensure_future(loop())
    await asyncio.sleep(0.1)  # let receive() subscribe (channels_redis subscribes on receive)
    print(f"ready {channel}", flush=True)
    print(json.dumps(await done), flush=True)
    await task
    await close_layer(layer)


# --- the sender process -----------------------------------------------------------------------


async def send_windows(layer: Any, channel: str, ack: str, seconds: float) -> int:
    """Send windows of WINDOW messages for ``seconds``, at most IN_FLIGHT unacked; return the
    number sent once all are acked."""
    sent, unacked, started = 0, 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(WINDOW):
            await layer.send(channel, MESSAGE)
        sent += WINDOW
        unacked += 1
        if unacked >= IN_FLIGHT:
            await asyncio.wait_for(layer.receive(ack), ACK_TIMEOUT)
            unacked -= 1
    for _ in range(unacked):
        await asyncio.wait_for(layer.receive(ack), ACK_TIMEOUT)
    return sent


async def sender(spec: dict[str, Any]) -> dict[str, Any]:
    """Start the receiver, warm up, measure, stop it; return both processes' figures."""
    layer = make_layer(spec)
    ack = await layer.new_channel()
    receiver_spec = json.dumps({**spec, "ack": ack})
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.layers_2proc", "--receiver", receiver_spec],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdout is not None
    try:
        line = child.stdout.readline().split()
        if line[:1] != ["ready"]:
            raise SystemExit("the receiver did not start")
        channel = line[1]
        await send_windows(layer, channel, ack, spec["seconds"] / 10)  # warm-up
        await layer.send(channel, {"type": "bench.mark"})
        await asyncio.wait_for(layer.receive(ack), ACK_TIMEOUT)
        started, cpu_started = time.perf_counter(), time.process_time()
        sent = await send_windows(layer, channel, ack, spec["seconds"])
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        await layer.send(channel, {"type": "bench.stop"})
        report = json.loads(child.stdout.readline())
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    await close_layer(layer)
    if report["received"] != sent:
        raise SystemExit(f"sent {sent} messages, the receiver got {report['received']}")
    return {
        "msgs_per_s": sent / elapsed,
        "sender_us": cpu / sent * 1e6,
        "receiver_us": report["cpu"] / sent * 1e6,
        "per_cpu_s": sent / (cpu + report["cpu"]),
    }


def run_profiled(name: str, spec: dict[str, Any], coroutine: Any) -> Any:
    """Run ``coroutine`` on the loop ``spec`` names (asyncio's, or uvloop's, the default of our
    server and of Uvicorn), under cProfile when LAYERS_2PROC_PROFILE names a backend."""
    factory = None
    if spec.get("loop") == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop

    def run() -> Any:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coroutine)

    backend = os.environ.get("LAYERS_2PROC_PROFILE")
    if not backend:
        return run()
    profile = cProfile.Profile()
    result = profile.runcall(run)
    profile.dump_stats(RESULTS / f"layers_2proc.{backend}.{name}.prof")
    return result


# --- the parent -------------------------------------------------------------------------------


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """REDIS_URL when set, else a redis-server without persistence on a free port."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    binary = shutil.which("redis-server") or str(ROOT / ".venv" / "bin" / "redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="crossway-bench-redis-") as directory:
        command = [binary, "--port", str(port), "--save", "", "--appendonly", "no"]
        process = subprocess.Popen(command, cwd=directory, stdout=subprocess.DEVNULL)
        try:
            for _ in range(200):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


def run_sender(
    name: str, url: str, seconds: float, profile: bool, loop: str = "asyncio"
) -> dict[str, Any]:
    """One round of one backend: its sender process (which starts its receiver)."""
    backend = BACKENDS[name]
    # The backend's options name layers.py's REDIS_URL: point them at this run's Redis.
    spec = {
        "layer_class": backend.layer_class,
        "options": _with_url(backend.options, url),
        "seconds": seconds,
        "loop": loop,
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if profile:
        env["LAYERS_2PROC_PROFILE"] = name
    return run_child(name, backend.python, "benchmarks.layers_2proc", "--sender", spec, env)


def _with_url(value: Any, url: str) -> Any:
    """``value`` with every occurrence of layers.py's REDIS_URL replaced by ``url``."""
    if isinstance(value, dict):
        return {key: _with_url(item, url) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_url(item, url) for item in value]
    return url if value == REDIS_URL else value


def run_rounds(
    names: list[str], url: str, rounds: int, seconds: float, loop: str
) -> dict[str, list[Any]]:
    """Every backend ``rounds`` times, interleaved (reversed on odd rounds)."""
    runs: dict[str, list[Any]] = {name: [] for name in names}
    for number in range(rounds):
        for name in names if number % 2 == 0 else names[::-1]:
            result = run_sender(name, url, seconds, profile=False, loop=loop)
            result["load"] = os.getloadavg()[0]
            runs[name].append(result)
            print(
                f"round {number + 1} {name}: {result['msgs_per_s']:,.0f} msgs/s, "
                f"{result['per_cpu_s']:,.0f} per CPU-s (sender {result['sender_us']:.1f} us, "
                f"receiver {result['receiver_us']:.1f} us per msg), load {result['load']:.1f}",
                file=sys.stderr,
                flush=True,
            )
    return runs


def report(runs: dict[str, list[Any]]) -> list[str]:
    """Medians per backend, then per-round ratios of each backend to its peer (median)."""
    lines = []
    for name, results in runs.items():
        med = {key: statistics.median(r[key] for r in results) for key in results[0]}
        lines.append(
            f"{name:24} {med['msgs_per_s']:>8,.0f} msgs/s  {med['per_cpu_s']:>8,.0f} per CPU-s  "
            f"sender {med['sender_us']:5.1f} us/msg  receiver {med['receiver_us']:5.1f} us/msg"
        )
    for name, results in runs.items():
        peer = BACKENDS[name].peer
        if peer not in runs:
            continue
        pairs = list(zip(results, runs[peer], strict=True))
        wall = [ours["msgs_per_s"] / theirs["msgs_per_s"] for ours, theirs in pairs]
        cpu = [ours["per_cpu_s"] / theirs["per_cpu_s"] for ours, theirs in pairs]
        lines.append(
            f"{name} vs {peer}: {statistics.median(wall):.2f}x msgs/s "
            f"({', '.join(f'{r:.2f}' for r in wall)}), {statistics.median(cpu):.2f}x per CPU-s "
            f"({', '.join(f'{r:.2f}' for r in cpu)})"
        )
    return lines


def main() -> None:
    """Be a sender or receiver process, or run every backend and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sender", help=argparse.SUPPRESS)
    parser.add_argument("--receiver", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=DEFAULT_BACKENDS, help="comma-separated")
    parser.add_argument("--seconds", type=float, default=2.0, help="measured phase per round")
    parser.add_argument("--rounds", type=int, default=5, help="runs per backend (median)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--profile", action="store_true", help="cProfile one extra round")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 0.3 s")
    args = parser.parse_args()
    if args.receiver:
        spec = json.loads(args.receiver)
        run_profiled("receiver", spec, receiver(spec))
        return
    if args.sender:
        spec = json.loads(args.sender)
        print(json.dumps(run_profiled("sender", spec, sender(spec))))
        return
    if args.quick:
        args.seconds, args.rounds = 0.3, 1
    ensure_peers()
    RESULTS.mkdir(parents=True, exist_ok=True)
    names = args.backends.split(",")
    with private_redis() as url:
        print(f"load average {load_average()} at the start", flush=True)
        runs = run_rounds(names, url, args.rounds, args.seconds, args.loop)
        if args.profile:
            for name in names:
                run_sender(name, url, args.seconds, profile=True, loop=args.loop)
    (RESULTS / "layers_2proc.json").write_text(json.dumps(runs, indent=2))
    print(f"load average {load_average()} at the end; {args.loop} event loop")
    print("\n".join(report(runs)))


if __name__ == "__main__":
    main()
