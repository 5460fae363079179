"""What does a consumer cost per message? Crossway's consumers next to Django Channels'.

No server and no network: each consumer runs in-process on asyncio queues (as the test
communicators do), so the numbers are the framework's own cost. Each side runs in its own
subprocess (ours from .venv, Channels from benchmarks/.peers/venv, so that the peer is never
imported into our interpreter) and prints one JSON line; this parent prints medians and ratios.

Cases, each measured as CPU microseconds (process time) per message, the best of a few batches:

- raw: a bare ASGI loop that echoes (the floor: queue hops only; the same code on both sides);
- echo: an AsyncWebsocketConsumer whose receive() sends the text back;
- group: receive() does group_send to the consumer's own group on the in-memory layer, and the
  group handler sends the text to the client (a chat room of one).

``--idle N`` (ours only) answers another question: what does an idle consumer in a group hold?
N connections are opened on the same queues, each a consumer that joined one group on the
in-memory layer, and left idle; it prints the Python heap (tracemalloc) and the asyncio tasks per
connection, for the consumer and for the raw loop (the harness's own share), and the difference.

Usage: ``.venv/bin/python -m benchmarks.consumer_dispatch [--rounds 5] [--messages 5000]``,
``.venv/bin/python -m benchmarks.consumer_dispatch --idle 2000``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import OURS_BIN

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = {
    "crossway": OURS_BIN / "python",
    "channels": ROOT / "benchmarks" / ".peers" / "venv" / "bin" / "python",
}
CASES = ("raw", "echo", "group")


async def raw_echo(scope: dict[str, Any], receive: Callable[..., Any], send: Any) -> None:
    """The floor: an ASGI WebSocket echo with no framework."""
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            return


def consumer_apps(framework: str) -> dict[str, Any]:
    """The echo and group consumers, written once against either framework's classes."""
    # Through importlib: neither Django nor Channels ships type information.
    if framework == "channels":
        layer = {"BACKEND": "channels.layers.InMemoryChannelLayer"}
        settings = importlib.import_module("django.conf").settings
        settings.configure(CHANNEL_LAYERS={"default": layer})
        importlib.import_module("django").setup()
        module = importlib.import_module("channels.generic.websocket")
    else:
        module = importlib.import_module("consumers")
    base: Any = module.AsyncWebsocketConsumer

    class Echo(base):  # type: ignore[misc]
        async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
            await self.send(text_data=text_data)

    class Group(base):  # type: ignore[misc]
        groups = ["room"]

        async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
            await self.channel_layer.group_send("room", {"type": "room.say", "text": text_data})

        async def room_say(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    return {"raw": raw_echo, "echo": Echo.as_asgi(), "group": Group.as_asgi()}


async def cpu_per_message(application: Any, messages: int) -> float:
    """CPU microseconds per echoed message through ``application``."""
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "websocket", "path": "/", "headers": [], "subprotocols": []}
    task = asyncio.ensure_future(application(scope, incoming.get, outgoing.put))
    await incoming.put({"type": "websocket.connect"})
    await outgoing.get()
    started = time.process_time()
    for _ in range(messages):
        await incoming.put({"type": "websocket.receive", "text": "x"})
        await outgoing.get()
    elapsed = time.process_time() - started
    await incoming.put({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(task, 10)
    return elapsed / messages * 1e6


async def idle_cost(application: Any, connections: int) -> tuple[float, float]:
    """Heap bytes and asyncio tasks per idle connection to ``application`` (after its accept)."""
    gc.collect()
    tasks_before = len(asyncio.all_tasks())
    heap_before = tracemalloc.get_traced_memory()[0]
    held = []
    for _ in range(connections):
        incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "websocket", "path": "/", "headers": [], "subprotocols": []}
        task = asyncio.ensure_future(application(scope, incoming.get, outgoing.put))
        await incoming.put({"type": "websocket.connect"})
        await outgoing.get()
        held.append((incoming, task))
    await asyncio.sleep(0.1)  # let every consumer settle into its idle wait
    gc.collect()
    heap = (tracemalloc.get_traced_memory()[0] - heap_before) / connections
    tasks = (len(asyncio.all_tasks()) - tasks_before) / connections
    for incoming, _ in held:
        await incoming.put({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait([task for _, task in held], timeout=30)
    return heap, tasks


async def idle(connections: int) -> None:
    """Print the idle cost of a consumer in a group, next to the raw loop's."""
    apps = consumer_apps("crossway")
    tracemalloc.start()
    await idle_cost(apps["group"], 50)  # warm-up: imports, the layer, caches
    raw_heap, raw_tasks = await idle_cost(apps["raw"], connections)
    heap, tasks = await idle_cost(apps["group"], connections)
    print(f"idle, {connections} connections: per connection")
    print(f"{'':<26}{'heap KiB':>10}{'tasks':>8}")
    print(f"{'raw loop (harness)':<26}{raw_heap / 1024:>10.2f}{raw_tasks:>8.2f}")
    print(f"{'consumer in a group':<26}{heap / 1024:>10.2f}{tasks:>8.2f}")
    own_heap, own_tasks = (heap - raw_heap) / 1024, tasks - raw_tasks
    print(f"{'the consumer own share':<26}{own_heap:>10.2f}{own_tasks:>8.2f}")


async def child(framework: str, messages: int) -> dict[str, float]:
    """One round in a child process: the best of three batches per case."""
    apps = consumer_apps(framework)
    results = {}
    for case in CASES:
        results[case] = min([await cpu_per_message(apps[case], messages) for _ in range(3)])
    return results


def run_round(framework: str, messages: int) -> dict[str, float]:
    # -m from the repository root: the script's own folder on sys.path would shadow the
    # standard library's http module with benchmarks/http.py.
    module = "benchmarks.consumer_dispatch"
    command = [str(PYTHONS[framework]), "-m", module, "--child", framework]
    command += ["--messages", str(messages)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    result: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--idle", type=int, default=0, help="measure N idle consumers instead")
    parser.add_argument("--child", choices=sorted(PYTHONS), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.idle:
        asyncio.run(idle(options.idle))
        return
    if options.child:
        print(json.dumps(asyncio.run(child(options.child, options.messages))))
        return
    if not PYTHONS["channels"].exists():
        sys.exit("the peers venv is missing: run 'bash benchmarks/setup_peers.sh' first")
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in PYTHONS}
    for number in range(options.rounds):
        order = list(PYTHONS) if number % 2 == 0 else list(reversed(PYTHONS))
        for framework in order:  # interleaved, so drifting load hits both sides alike
            rounds[framework].append(run_round(framework, options.messages))
    print(f"CPU us per message (median of {options.rounds} rounds; lower is better)")
    print(f"{'case':<8}{'crossway':>10}{'channels':>10}{'channels/crossway':>20}")
    for case in CASES:
        ours = statistics.median(r[case] for r in rounds["crossway"])
        peer = statistics.median(r[case] for r in rounds["channels"])
        print(f"{case:<8}{ours:>10.1f}{peer:>10.1f}{peer / ours:>19.2f}x")


if __name__ == "__main__":
    main()
