"""How fast do channel layers carry messages? Crossway's layers next to Channels' peers.

Each backend runs in its own subprocess (ours from .venv, the peers from benchmarks/.peers/venv,
so that no peer is ever imported into our interpreter) and prints one JSON line; this parent
prints a table with ratios. Measured per backend, in one run:

- send+receive: one task alternates ``send`` and ``receive`` on one channel (messages/s);
- latency: a receiver waits; the sender sends a timestamp and waits for the receiver to see it
  (p50 and p99 of send-to-receive, in microseconds);
- fan-out: 1, 100 and 1000 members each loop on ``receive`` while one task ``group_send``s in
  bursts of 10, waiting for every member to drain each burst (deliveries/s). Each case stops
  after ``--seconds`` so that a quadratic peer cannot take minutes.

Every backend runs ``--rounds`` times, interleaved, and the table shows medians; then the
cost of copying one message (copy.deepcopy, as Channels does, against our copier).

Adding a backend is one entry in BACKENDS (``peer`` names the row it is compared with).

The Redis layers (ours and channels_redis, core and pub/sub) use the Redis at ``REDIS_URL``
(default ``redis://127.0.0.1:6379``), channels_redis with ``socket_timeout=None`` so that its
idle receives survive (channels_redis#422). For them the fan-out is measured twice: members in
the benchmark process, then the same members spread over 4 receiver processes (each acks every
drained burst over the layer itself, so the sender never outruns capacity).

Send+receive between a sender process and a receiver process is ``benchmarks/layers_2proc.py``.

Usage: ``.venv/bin/python -m benchmarks.layers [--quick] [--backends a,b] [--seconds 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._common import run_child

ROOT = Path(__file__).resolve().parent.parent
OURS_PYTHON = ROOT / ".venv" / "bin" / "python"
PEERS_VENV = ROOT / "benchmarks" / ".peers" / "venv"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
RESULTS = ROOT / "benchmarks" / ".results" / "layers.json"
FANOUT_SIZES = (1, 100, 1000)
BURST = 10
Results = dict[str, dict[str, float]]  # backend -> metric -> value


@dataclass(frozen=True)
class Backend:
    """One layer under test: which interpreter runs it, its class, its options, its peer."""

    python: Path
    layer_class: str  # "module:Class"
    options: dict[str, Any] = field(default_factory=dict)
    peer: str | None = None  # the BACKENDS key this one is compared with
    processes: int = 1  # > 1: also measure fan-out with members spread over this many processes


REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
# channels_redis's receives die after redis-py's 5 s socket timeout when idle (#422).
_PEER_REDIS = {"hosts": [{"address": REDIS_URL, "socket_timeout": None}]}

BACKENDS: dict[str, Backend] = {
    "channels-memory": Backend(PEERS_PYTHON, "channels.layers:InMemoryChannelLayer"),
    "crossway-memory": Backend(
        OURS_PYTHON, "channel_layers.memory:InMemoryChannelLayer", peer="channels-memory"
    ),
    "channels-redis": Backend(
        PEERS_PYTHON, "channels_redis.core:RedisChannelLayer", _PEER_REDIS, processes=4
    ),
    "crossway-redis": Backend(
        OURS_PYTHON,
        "channel_layers.redis:RedisChannelLayer",
        {"hosts": [REDIS_URL]},
        peer="channels-redis",
        processes=4,
    ),
    "channels-redis-pubsub": Backend(
        PEERS_PYTHON, "channels_redis.pubsub:RedisPubSubChannelLayer", _PEER_REDIS, processes=4
    ),
    "crossway-redis-pubsub": Backend(
        OURS_PYTHON,
        "channel_layers.redis_pubsub:RedisPubSubChannelLayer",
        {"hosts": [REDIS_URL]},
        peer="channels-redis-pubsub",
        processes=4,
    ),
}


# --- the worker: runs inside one backend's interpreter ---------------------------------------


def make_layer(spec: dict[str, Any]) -> Any:
    """Build the layer named by ``spec`` (capacity raised so bursts never hit ChannelFull)."""
    module_name, _, class_name = spec["layer_class"].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**{"capacity": 1000, **spec["options"]})


async def measure_send_receive(layer: Any, seconds: float) -> tuple[float, float]:
    """Messages per wall-clock second and per CPU second through one channel, one task
    alternating send and receive."""
    channel = await layer.new_channel()
    message = {"type": "bench.message", "text": "hello", "n": 1}
    count, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            await layer.send(channel, message)
            await layer.receive(channel)
        count += 200
    return count / elapsed, count / (time.process_time() - cpu_started)


async def measure_latency(layer: Any, samples: int) -> tuple[float, float]:
    """p50 and p99 (microseconds) from send() to a waiting receiver holding the message."""
    channel = await layer.new_channel()
    delays: list[float] = []
    seen = asyncio.Event()

    async def receiver() -> None:
        for _ in range(samples):
            message = await layer.receive(channel)
            delays.append(time.perf_counter() - message["sent_at"])
            seen.set()

    task = asyncio.ensure_future(receiver())
    await asyncio.sleep(0)
    for _ in range(samples):
        seen.clear()
        await layer.send(channel, {"type": "bench.ping", "sent_at": time.perf_counter()})
        await seen.wait()
    await task
    cuts = statistics.quantiles(delays, n=100)
    return cuts[49] * 1e6, cuts[98] * 1e6


async def measure_fanout(layer: Any, members: int, seconds: float) -> tuple[float, float]:
    """Deliveries per wall-clock second and per CPU second to ``members`` live receivers."""
    names = [await layer.new_channel() for _ in range(members)]
    group = f"bench-fanout-{members}"
    for name in names:
        await layer.group_add(group, name)
    state = {"pending": 0}
    drained = asyncio.Event()

    async def member(name: str) -> None:
        while True:
            await layer.receive(name)
            state["pending"] -= 1
            if state["pending"] == 0:
                drained.set()

    tasks = [asyncio.ensure_future(member(name)) for name in names]
    await asyncio.sleep(0)
    sent, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        drained.clear()
        state["pending"] = BURST * members
        for _ in range(BURST):
            await layer.group_send(group, {"type": "bench.news", "text": "hello", "n": sent})
            sent += 1
        try:  # a layer that lost a delivery never drains: stop rather than hang
            await asyncio.wait_for(drained.wait(), 20)
        except TimeoutError:
            print(f"fan-out {members}: deliveries lost, stopping", file=sys.stderr)
            sent -= BURST
            break
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for name in names:
        await layer.group_discard(group, name)
    return sent * members / elapsed, sent * members / cpu


async def close_layer(layer: Any) -> None:
    """close() where the layer has one (channels_redis's core layer has close_pools())."""
    close = getattr(layer, "close", None) or getattr(layer, "close_pools", None)
    if close is not None:
        await close()


async def fanout_child(spec: dict[str, Any]) -> None:
    """One receiver process of the multi-process fan-out: join, ack each drained burst, stop."""
    layer = make_layer(spec)
    names = [await layer.new_channel() for _ in range(spec["members"])]
    for name in names:
        await layer.group_add(spec["group"], name)
    state = {"pending": BURST * len(names)}

    async def member(name: str) -> None:
        while True:
            message = await layer.receive(name)
            if message["type"] == "bench.stop":
                return
            state["pending"] -= 1
            if state["pending"] == 0:
                state["pending"] = BURST * len(names)
                await layer.send(spec["ack"], {"type": "bench.ack"})

    tasks = [asyncio.ensure_future(member(name)) for name in names]
    await asyncio.sleep(0.05)  # let every receive() start (pub/sub subscribes on receive)
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    await close_layer(layer)


async def measure_fanout_processes(
    layer: Any, spec: dict[str, Any], members: int, processes: int, seconds: float
) -> float:
    """Deliveries per second to ``members`` receivers spread over ``processes`` processes."""
    ack = await layer.new_channel()
    group = f"bench-procs-{members}"
    child_spec = {**spec, "members": members // processes, "group": group, "ack": ack}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.layers", "--fanout-child", json.dumps(child_spec)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
    acked, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for number in range(BURST):
            await layer.group_send(group, {"type": "bench.news", "text": "hello", "n": number})
        try:  # a layer that drops deliveries never acks the burst: give up rather than hang
            for _ in range(processes):
                await asyncio.wait_for(layer.receive(ack), 20)
        except TimeoutError:
            print(f"fan-out {members} over {processes} processes: deliveries lost", file=sys.stderr)
            break
        acked += BURST
    elapsed = time.perf_counter() - started
    await layer.group_send(group, {"type": "bench.stop"})
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return float(acked * child_spec["members"] * processes / elapsed)


async def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Every measurement for one backend, after a short warm-up."""
    layer = make_layer(spec)
    seconds, samples = spec["seconds"], spec["samples"]
    await measure_send_receive(layer, seconds / 10)  # warm-up
    result: dict[str, Any] = {}
    result["send_receive"], result["send_receive_cpu"] = await measure_send_receive(layer, seconds)
    result["latency_p50_us"], result["latency_p99_us"] = await measure_latency(layer, samples)
    for members in FANOUT_SIZES:
        wall, cpu = await measure_fanout(layer, members, seconds)
        result[f"fanout_{members}"], result[f"fanout_{members}_cpu"] = wall, cpu
    processes = spec.get("processes", 1)
    for members in FANOUT_SIZES if processes > 1 else ():
        result[f"fanout_{members}_procs"] = await measure_fanout_processes(
            layer, spec, max(members, processes), processes, seconds
        )
    await layer.flush()
    await close_layer(layer)
    return result


# --- the parent: runs every backend, prints the table ---------------------------------------

# (key, label, higher is better). "per CPU-s" divides by the worker's CPU time rather than the
# wall clock: steadier when other work shares the machine.
ROWS = [
    ("send_receive", "send+receive, msgs/s", True),
    ("send_receive_cpu", "send+receive, msgs per CPU-s", True),
    ("latency_p50_us", "latency p50, us", False),
    ("latency_p99_us", "latency p99, us", False),
    *[(f"fanout_{n}", f"fan-out {n} members, deliveries/s", True) for n in FANOUT_SIZES],
    *[(f"fanout_{n}_cpu", f"fan-out {n} members, per CPU-s", True) for n in FANOUT_SIZES],
    *[(f"fanout_{n}_procs", f"fan-out {n} in 4 processes, deliv/s", True) for n in FANOUT_SIZES],
]


def run_backend(name: str, backend: Backend, seconds: float, samples: int) -> dict[str, Any]:
    """Run one backend's worker in its own interpreter and return its JSON result."""
    if not backend.python.exists():
        raise SystemExit(f"{backend.python} is missing: run 'bash benchmarks/setup_peers.sh'")
    spec = {
        "layer_class": backend.layer_class,
        "options": backend.options,
        "seconds": seconds,
        "samples": samples,
        "processes": backend.processes,
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return run_child(name, backend.python, "benchmarks.layers", "--worker", spec, env)


def ensure_peers() -> None:
    """Create the peers' venv with channels in it when missing (never in our own venv)."""
    if PEERS_PYTHON.exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run(
        [str(PEERS_PYTHON), "-m", "pip", "install", "--quiet", "channels", "channels_redis"],
        check=True,
    )


def format_table(results: Results) -> str:
    """Rows per measurement, a column per backend, and one ratio column per compared pair."""
    names = list(results)
    pairs = [(n, BACKENDS[n].peer) for n in names if BACKENDS[n].peer in results]
    header = ["", *names, *[f"{ours} vs {peer}" for ours, peer in pairs]]
    lines = [header]
    for key, label, higher_is_better in ROWS:
        if not any(key in results[n] for n in names):
            continue
        row = [label, *[f"{results[n][key]:,.0f}" if key in results[n] else "-" for n in names]]
        for ours, peer in pairs:
            assert peer is not None
            if key not in results[ours] or not results[peer].get(key) or not results[ours][key]:
                row.append("-")  # missing, or 0: a case that lost deliveries and stopped
                continue
            ratio = results[ours][key] / results[peer][key]
            row.append(f"{ratio if higher_is_better else 1 / ratio:.1f}x")
        lines.append(row)
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in lines
    )


def run_rounds(names: list[str], rounds: int, seconds: float, samples: int) -> Results:
    """Run every backend ``rounds`` times, interleaved (order reversed on odd rounds) so that
    drifting load on a shared machine hits all alike; return each metric's median."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_number in range(rounds):
        for name in names if round_number % 2 == 0 else names[::-1]:
            print(f"round {round_number + 1}: {name} ...", file=sys.stderr, flush=True)
            runs[name].append(run_backend(name, BACKENDS[name], seconds, samples))
    return {
        name: {key: statistics.median(run[key] for run in results) for key in results[0]}
        for name, results in runs.items()
    }


def measure_copy() -> list[str]:
    """What one delivery's copy costs: copy.deepcopy (Channels) against our copier."""
    from channel_layers.memory import copy_message, is_flat

    flat: dict[str, Any] = {"type": "chat.message", "text": "hello", "user": 42}
    nested: dict[str, Any] = {
        "type": "chat.message",
        "payload": {"items": [{"id": number, "tags": ["a", "b"]} for number in range(5)]},
    }
    lines = []
    for label, message in (("flat", flat), ("nested", nested)):
        number = 20000

        def channels_copy(message: dict[str, Any] = message) -> Any:
            return copy.deepcopy(message)

        def our_copy(message: dict[str, Any] = message) -> Any:
            return copy_message(message, is_flat(message))

        deep = timeit.timeit(channels_copy, number=number) / number
        ours = timeit.timeit(our_copy, number=number) / number
        lines.append(
            f"copy of a {label} message: copy.deepcopy {deep * 1e9:,.0f} ns, "
            f"ours {ours * 1e9:,.0f} ns ({deep / ours:.1f}x)"
        )
    return lines


def main() -> None:
    """Parse options; either be one backend's worker or run them all and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--fanout-child", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--seconds", type=float, default=2.0, help="per throughput case")
    parser.add_argument("--samples", type=int, default=5000, help="latency samples")
    parser.add_argument("--rounds", type=int, default=3, help="runs per backend (median)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 0.2 s")
    args = parser.parse_args()
    if args.fanout_child:
        asyncio.run(fanout_child(json.loads(args.fanout_child)))
        return
    if args.worker:
        print(json.dumps(asyncio.run(run_worker(json.loads(args.worker)))))
        return
    if args.quick:
        args.seconds, args.samples, args.rounds = 0.2, 200, 1
    ensure_peers()
    results = run_rounds(args.backends.split(","), args.rounds, args.seconds, args.samples)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(format_table(results))
    print("\n".join(measure_copy()))


if __name__ == "__main__":
    main()
