"""Instructions per HTTP/1.1 request of our server, counted by callgrind: an A/B measure that
the machine's load does not move.

The server (httptools on uvloop, access log off, pinned to core 0) runs under
``valgrind --tool=callgrind`` with collection off; once it answers, collection is switched on
(``callgrind_control -i on``), a client on core 1 makes ``--requests`` requests (``Connection:
close``, one connection each, or keep-alive on ``--connections`` connections), collection is
switched off, and the server's instructions are divided by the requests. Only the server
process is counted; the client and the rest of the machine are not. Compare two trees by running
this from each (``--root``); the function breakdown is in ``benchmarks/.results/callgrind/``
(``callgrind_annotate`` reads it).

``--mypyc`` measures a copy of the tree whose HTTP hot path (``HOT_PATH``) mypyc compiled, built
under ``benchmarks/.results/mypyc/``; ``benchmarks.http`` run from that copy times it. It needs
a C compiler and Python's headers.

``.venv/bin/python -m benchmarks.callgrind_http [--mode close|keepalive] [--requests N] [--mypyc]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from benchmarks._common import HOST, OURS_BIN, RESULTS_DIR, free_port

# The modules every HTTP/1.1 request runs through, which --mypyc compiles.
HOT_PATH = (
    "asgi_server/protocols/http11.py",
    "asgi_server/protocols/_parsers.py",
    "asgi_server/protocols/_response.py",
    "asgi_server/asgi/http.py",
    "asgi_server/connection/http.py",
    "asgi_server/connection/timers.py",
)
REQUEST_CLOSE = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
REQUEST_KEEPALIVE = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def _close_client(port: int, count: int) -> None:
    for _ in range(count):
        with socket.create_connection((HOST, port)) as sock:
            sock.sendall(REQUEST_CLOSE)
            while sock.recv(65536):
                pass


def _keepalive_client(port: int, count: int) -> None:
    with socket.create_connection((HOST, port)) as sock:
        for _ in range(count):
            sock.sendall(REQUEST_KEEPALIVE)
            received = b""
            while not received.endswith(b"Hello, world!"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("the server closed a keep-alive connection")
                received += chunk


def run_clients(port: int, mode: str, requests: int, connections: int) -> float:
    """Make ``requests`` requests from ``connections`` threads; return the seconds taken."""
    target = _close_client if mode == "close" else _keepalive_client
    per_thread = requests // connections
    threads = [threading.Thread(target=target, args=(port, per_thread)) for _ in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def _wait_ready(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _close_client(port, 1)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the server did not answer under valgrind")


def measure(root: Path, mode: str, requests: int, connections: int, warmup: int) -> int:
    """Instructions of the server per request."""
    out_dir = RESULTS_DIR / "callgrind"
    out_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    out_file = out_dir / f"callgrind.{mode}.{os.getpid()}"
    command = [
        *["taskset", "-c", "0", "valgrind", "--tool=callgrind", "--instr-atstart=no"],
        f"--callgrind-out-file={out_file}",
        str(OURS_BIN / "python"),
        "-m",
        "asgi_server",
        "benchmarks.apps:app",
        *["--http", "httptools", "--loop", "uvloop", "--no-access-log", "--log-level", "warning"],
        *["--port", str(port)],
    ]
    env = {**os.environ, "PYTHONPATH": str(root)}
    server = subprocess.Popen(
        command, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_ready(port)
        run_clients(port, mode, warmup, connections)
        subprocess.run(
            ["callgrind_control", "-i", "on", str(server.pid)], check=True, capture_output=True
        )
        run_clients(port, mode, requests, connections)
        subprocess.run(
            ["callgrind_control", "-i", "off", str(server.pid)], check=True, capture_output=True
        )
    finally:
        server.terminate()
        _, err = server.communicate(timeout=120)
    match = re.search(rb"Collected : (\d+)", err)
    if match is None:
        raise RuntimeError(err.decode(errors="replace")[-2000:])
    return int(match.group(1)) // (requests // connections * connections)


def compiled_copy(root: Path) -> Path:
    """Copy ``root``'s server and benchmarks aside and compile ``HOT_PATH`` there with mypyc."""
    target = RESULTS_DIR / "mypyc" / f"tree-{os.getpid()}"
    skip = shutil.ignore_patterns("__pycache__", "*.so", ".results", ".peers")
    for package in ("asgi_server", "benchmarks"):
        shutil.copytree(root / package, target / package, ignore=skip)
    # benchmarks.http, run from the copy, starts ours and the peers from these.
    (target / ".venv").symlink_to(OURS_BIN.parent)
    peers = root / "benchmarks" / ".peers"
    if peers.exists():
        (target / "benchmarks" / ".peers").symlink_to(peers.resolve())
    built = subprocess.run(
        [str(OURS_BIN / "mypyc"), *HOT_PATH], cwd=target, capture_output=True, text=True
    )
    if built.returncode != 0:
        raise RuntimeError(f"mypyc failed:\n{built.stdout[-3000:]}{built.stderr[-3000:]}")
    return target


def main() -> None:
    """Print the server's instructions per request."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("close", "keepalive"), default="close")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--mypyc", action="store_true", help="compile HOT_PATH in a copy first")
    args = parser.parse_args()
    root = compiled_copy(args.root) if args.mypyc else args.root
    per_request = measure(root, args.mode, args.requests, args.connections, args.warmup)
    print(f"{args.mode}: {per_request} instructions per request ({root})")


if __name__ == "__main__":
    main()
