"""Helpers shared by the benchmark scripts: start a server pinned to a core, wait, stop it.

Every server runs in its own process group (so its workers stop with it) with its output in
``benchmarks/.results/logs/``. ``stop_all()`` runs at exit and on SIGTERM/SIGHUP (turned into
KeyboardInterrupt), so that a benchmark never leaves a server behind, even on Ctrl-C.

Typical use::

    with start_server("uvicorn", [PEERS_BIN / "uvicorn", "benchmarks.apps:app", ...], port,
                      cpu=0) as server:
        ...  # server.port is serving
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / "benchmarks" / ".peers" / "venv"
PEERS_BIN = PEERS_VENV / "bin"


def _ours_bin() -> Path:
    """The bin folder of the virtualenv running this benchmark when Crossway is installed there
    (CI's 3.13 run uses .venv-3.13), else the project's .venv."""
    here = Path(sys.executable).parent
    return here if (here / "asgi-server").exists() else ROOT / ".venv" / "bin"


OURS_BIN = _ours_bin()
RESULTS_DIR = ROOT / "benchmarks" / ".results"
HOST = "127.0.0.1"

_running: list[Server] = []


class ServerFailed(RuntimeError):
    """A server exited or did not answer in time; the message carries the tail of its log."""


class Server:
    """One benchmarked server process (and its process group)."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.name = name
        self.process = process
        self.port = port
        self.log = log

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the server wrote, to explain why it failed."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after ``timeout`` seconds."""
        if self in _running:
            _running.remove(self)
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        # Workers of a supervisor (hypercorn, granian) may outlive it: kill the group regardless.
        _signal_group(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_all() -> None:
    """Stop every server this process started and has not stopped yet."""
    for server in list(_running):
        server.stop(timeout=5.0)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


atexit.register(stop_all)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _interrupt)


def free_port() -> int:
    """A TCP port on HOST that is free right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def can_pin() -> bool:
    """True when taskset exists and there are two cores: one for the server, one for the load."""
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pinned(command: Sequence[str | Path], cpu: int | None) -> list[str]:
    """``command`` prefixed with ``taskset -c cpu`` (unchanged when cpu is None)."""
    args = [str(part) for part in command]
    return args if cpu is None else ["taskset", "-c", str(cpu), *args]


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds used so far by the live processes of process group ``pgid``.

    CPU time per request is steadier than req/s on a shared machine: other work delays a server
    but does not make it burn more CPU per request. (Workers that exited are not counted.)
    """
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process exited meanwhile
        # After the command name: state, ppid, pgrp, ..., utime (index 11), stime (index 12).
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, for the record: other work skews absolute numbers."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


@contextlib.contextmanager
def start_server(
    name: str,
    command: Sequence[str | Path],
    port: int,
    cpu: int | None = None,
    ready_timeout: float = 30.0,
    ready: Callable[[Server, float], None] | None = None,
) -> Iterator[Server]:
    """Run ``command`` (pinned to ``cpu``) until the block ends; yield once it answers HTTP
    (``ready(server, timeout)`` decides; default: a plain HTTP/1.1 GET, ``wait_ready``)."""
    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}-{port}.log"  # the port keeps concurrent runs apart
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        process = subprocess.Popen(
            pinned(command, cpu),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, process, port, log)
    _running.append(server)
    try:
        (ready or wait_ready)(server, ready_timeout)
        yield server
    finally:
        server.stop()


def wait_ready(server: Server, timeout: float) -> None:
    """Poll with a plain GET until the server answers 200; raise ServerFailed if it cannot."""
    deadline = time.monotonic() + timeout
    request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerFailed(
                f"{server.name} exited with code {server.process.returncode}; "
                f"its log ({server.log}) ends with:\n{server.log_tail()}"
            )
        try:
            with socket.create_connection((HOST, server.port), timeout=2.0) as sock:
                sock.sendall(request)
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise ServerFailed(
        f"{server.name} did not answer GET / on port {server.port} within {timeout:.0f} s; "
        f"its log ({server.log}) ends with:\n{server.log_tail()}"
    )


def require(path: Path, hint: str) -> None:
    """Exit with ``hint`` when an executable the benchmark needs is missing."""
    if not path.exists():
        sys.exit(f"{path} is missing: {hint}")


def run_child(
    name: str, python: Path, module: str, flag: str, spec: Any, env: Mapping[str, str]
) -> dict[str, Any]:
    """Run ``python -m module flag <spec as JSON>`` in the repository (``-m``, not the file:
    run as a script, benchmarks/ would shadow stdlib modules such as http) and return the JSON
    of its last output line; exit naming ``name`` with its stderr's tail when it fails."""
    done = subprocess.run(
        [str(python), "-m", module, flag, json.dumps(spec)],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
