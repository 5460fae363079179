"""What does an idle chat consumer cost behind the real server? RSS per WebSocket, ours only.

Starts ``python -m asgi_server examples.chat.app:application`` on the in-memory layer, opens N
WebSocket connections to one room (each consumer joins the room's group in connect()), leaves
them idle, and prints the server's RSS growth per connection. ``--root`` runs another checkout's
code (say, main's) with the same script, for a before/after comparison.

Usage: ``.venv/bin/python -m benchmarks.consumer_idle [--connections 1000] [--root PATH]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = websockets.Origin("http://127.0.0.1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid`` in KiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def join(url: str) -> websockets.ClientConnection:
    client = await websockets.connect(url, origin=ORIGIN, ping_interval=None)
    await client.recv()  # the consumer's "joined": it is in the group now
    return client


async def measure(pid: int, url: str, connections: int) -> float:
    """KiB of RSS per idle connection, after 50 warm-up connections."""
    warm: list[websockets.ClientConnection] = []
    for attempt in range(200):
        try:
            warm.append(await join(url))
            break
        except OSError:
            if attempt == 199:
                raise
            await asyncio.sleep(0.05)
    warm += [await join(url) for _ in range(50)]
    await asyncio.sleep(0.5)
    before = rss_kib(pid)
    clients = [await join(url) for _ in range(connections)]
    await asyncio.sleep(1)
    per_connection = (rss_kib(pid) - before) / connections
    for client in clients + warm:
        await client.close()
    return per_connection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose code to run")
    options = parser.parse_args()
    port = free_port()
    command = [sys.executable, "-m", "asgi_server", "examples.chat.app:application"]
    command += ["--port", str(port), "--log-level", "warning"]
    env = dict(os.environ, CHANNEL_LAYERS_URL="memory://")
    server = subprocess.Popen(command, cwd=options.root, env=env)
    try:
        url = f"ws://127.0.0.1:{port}/ws/chat/lobby/"
        kib = asyncio.run(measure(server.pid, url, options.connections))
    finally:
        server.terminate()
        server.wait()
    print(f"{options.root}: {kib:.2f} KiB RSS per idle chat consumer in a group")


if __name__ == "__main__":
    main()
