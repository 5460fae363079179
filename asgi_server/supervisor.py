"""Worker processes sharing the listening sockets, and restarting them without dropping a client.

``asgi-server app --workers N`` (or ``--reload``) runs a ``Supervisor``: it binds the listening
sockets once and starts N worker processes (spawned, so each imports the app afresh) that serve
on the inherited sockets with the normal ``Server``. The kernel hands each new connection to one
of the workers. Then the supervisor:

- replaces a worker that exits (a crash, a SIGKILL, ``--limit-max-requests``) and logs it;
- on SIGTERM or SIGINT sends SIGTERM to every worker (each shuts down gracefully) and exits 0;
- on SIGHUP, or with ``--reload`` when a watched file changes, replaces the workers one at a
  time: it starts the new worker, waits until it serves, then stops the old one. The listening
  socket never closes, so no connection is refused meanwhile. A new worker that fails to start
  (say, a syntax error in the edited module) leaves the old one serving.

Workers report readiness over a pipe. Twisted ``--endpoint`` listeners cannot be bound ahead of
time, so with endpoints each worker binds its own and a restart stops the old worker first.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import signal
import socket
import time
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, Protocol

from asgi_server.config import Config

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from asgi_server.reload import Watcher

logger = logging.getLogger("asgi_server.supervisor")

#: Each worker's slot, 1..N, in its environment (a replacement takes the slot of the worker it
#: replaces): apps that place work on particular processes read it.
WORKER_INDEX_VARIABLE = "ASGI_SERVER_WORKER_INDEX"


class Companion(Protocol):
    """A helper process the supervisor owns beside its workers (e.g. an embedded Redis):
    started before the first worker, stopped after the last one (also when it failed to
    start)."""

    def start(self) -> dict[str, str]:
        """Start; return environment variables for the workers (e.g. the layer's URL). Raise
        RuntimeError, with a message that says what to do, when it cannot start."""

    def stop(self) -> None:
        """Stop and clean up."""


EXIT_STARTUP_FAILED = 3


def uses_twisted(config: Config) -> bool:
    """Whether ``config`` selects the Twisted transport (explicitly, or by giving endpoints)."""
    return config.transport == "twisted" or (config.transport == "auto" and bool(config.endpoints))


def configuration_error(config: Config) -> str | None:
    """Why options that cannot work together were given, or None."""
    if config.endpoints and config.transport == "asyncio":
        return "--endpoint needs the Twisted transport: drop --transport asyncio."
    if config.endpoints and config.workers > 1:
        return (
            "--workers cannot share --endpoint listeners (each worker would bind them "
            "again); use --host/--port, --uds or --fd with --transport twisted instead."
        )
    return None


def with_request_jitter(config: Config) -> Config:
    """``config`` with --limit-max-requests raised by a random 0..jitter for this worker."""
    limit, jitter = config.limit_max_requests, config.limit_max_requests_jitter
    if limit is None or jitter <= 0:
        return config
    return config.with_changes(limit_max_requests=limit + random.randint(0, jitter))


def serve_in_this_process(
    config: Config,
    sockets: Sequence[socket.socket] | None = None,
    on_started: Callable[[], None] | None = None,
) -> int:
    """Run one server in this process on the chosen transport; return its exit code."""
    import asyncio

    error = configuration_error(config)
    if error is not None:
        logger.error("%s", error)
        return EXIT_STARTUP_FAILED

    from asgi_server.server import Server, asyncio_run

    config = with_request_jitter(config)
    server: Server
    if uses_twisted(config):
        from asgi_server.transports.twisted import TwistedServer, run_on_reactor

        server = TwistedServer(config)
    else:
        server = Server(config)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.handle_exit, sig)
        serving = loop.create_task(server.serve(sockets))
        started = loop.create_task(server.started.wait())
        await asyncio.wait([serving, started], return_when=asyncio.FIRST_COMPLETED)
        if started.done() and on_started is not None:
            on_started()
        started.cancel()
        await serving
        return server.exit_code

    if uses_twisted(config):
        return run_on_reactor(main(), config.loop)
    return asyncio_run(main(), config.loop)


def bind_sockets(config: Config) -> list[socket.socket]:
    """Bind the listening sockets the workers share (none when Twisted endpoints are used)."""
    if config.endpoints:
        return []
    if config.fd is not None:
        sock = socket.socket(fileno=config.fd)
    elif config.uds is not None:
        if os.path.exists(config.uds):
            os.unlink(config.uds)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(config.uds)
    else:
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
    sock.listen(config.backlog)
    sock.set_inheritable(True)
    return [sock]


def _worker_main(config: Config, sockets: list[socket.socket], ready: Connection) -> None:
    """The entry point of a worker process: serve, telling the supervisor once serving."""
    from asgi_server.logs import configure_logging

    # A terminal's hang-up is for the supervisor, which restarts us; do not die of it.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    configure_logging(config.log_level, config.log_config)
    code = serve_in_this_process(config, sockets, lambda: ready.send("ready"))
    ready.close()
    raise SystemExit(code)


@dataclass
class Worker:
    """One worker process, as the supervisor tracks it."""

    process: BaseProcess
    ready_pipe: Connection | None
    ready: bool = False
    slot: int = 1
    retiring: bool = False  # told to stop: do not replace it when it exits
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int | None:
        """The worker's process id."""
        return self.process.pid


class Supervisor:
    """Runs ``config.workers`` worker processes until SIGTERM/SIGINT; see the module docstring."""

    def __init__(self, config: Config, companions: Sequence[Companion] = ()) -> None:
        self.config = config
        self.companions = list(companions)
        self.workers: list[Worker] = []
        self.sockets: list[socket.socket] = []
        self._context = multiprocessing.get_context("spawn")
        self._signals: list[int] = []
        self._wakeup_reader, self._wakeup_writer = socket.socketpair()
        self._ever_ready = False
        self._respawn_after = 0.0
        self._watcher: Watcher | None = None

    # --- the main loop -------------------------------------------------------------------------
    def run(self) -> int:
        """Start the workers and supervise them; returns the exit code (0 after a signal)."""
        error = configuration_error(self.config)
        if error is not None:
            logger.error("%s", error)
            return EXIT_STARTUP_FAILED
        self.sockets = bind_sockets(self.config)
        # multiprocessing's resource tracker, a child of ours, inherits an ignored SIGHUP:
        # a hang-up sent to our process group must not kill it.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        resource_tracker.ensure_running()
        self._install_signal_handlers()
        if self.config.reload:
            from asgi_server.reload import make_watcher

            self._watcher = make_watcher(self.config)
            logger.info("Watching %s for changes", ", ".join(self._watcher.directories))
        logger.info("Supervisor [%d] starting %d worker(s)", os.getpid(), self.config.workers)
        # Inherited by the workers: the app side (channel_layers.startup) warns about a layer
        # that cannot be shared between them. A name, not an import (see DESIGN.md).
        os.environ["ASGI_SERVER_WORKERS"] = str(self._worker_count())
        try:
            for companion in self.companions:
                try:
                    os.environ.update(companion.start())
                except RuntimeError as exc:
                    logger.error("%s", exc)
                    return EXIT_STARTUP_FAILED
            for _ in range(self._worker_count()):
                self._spawn()
            return self._loop()
        finally:
            self._stop_all()
            for companion in reversed(self.companions):
                companion.stop()
            for sock in self.sockets:
                sock.close()
            if self.config.uds is not None and os.path.exists(self.config.uds):
                os.unlink(self.config.uds)

    def _worker_count(self) -> int:
        return max(1, self.config.workers)

    def _loop(self) -> int:
        while True:
            self._wait(self.config.reload_delay if self._watcher else 1.0)
            signals, self._signals = self._signals, []
            if signal.SIGINT in signals or signal.SIGTERM in signals:
                logger.info("Supervisor received a stop signal; stopping the workers")
                return 0
            if signal.SIGHUP in signals:
                logger.info("SIGHUP: restarting the workers one at a time")
                self._restart_all()
            if self._watcher is not None:
                changed = self._watcher.changes()
                if changed:
                    logger.info("Reloading: %s changed", ", ".join(sorted(changed)[:3]))
                    self._restart_all()
            code = self._reap()
            if code is not None:
                return code

    def _wait(self, timeout: float) -> None:
        """Sleep until a signal, a worker's readiness or exit, or the timeout."""
        waitables: list[Any] = [self._wakeup_reader]
        for worker in self.workers:
            waitables.append(worker.process.sentinel)
            if worker.ready_pipe is not None:
                waitables.append(worker.ready_pipe)
        for item in wait(waitables, timeout):
            if item is self._wakeup_reader:
                self._wakeup_reader.recv(4096)
        self._read_readiness()

    def _read_readiness(self) -> None:
        for worker in self.workers:
            pipe = worker.ready_pipe
            if pipe is None:
                continue
            try:
                while pipe.poll():
                    pipe.recv()
                    worker.ready = self._ever_ready = True
                    logger.info("Worker [%s] is serving", worker.pid)
            except (EOFError, OSError):  # the worker is gone; _reap notices
                pipe.close()
                worker.ready_pipe = None

    def _reap(self) -> int | None:
        """Forget exited workers and replace those that should still run."""
        for worker in [w for w in self.workers if not w.process.is_alive()]:
            self.workers.remove(worker)
            worker.process.join()
            if worker.ready_pipe is not None:
                worker.ready_pipe.close()
            code = worker.process.exitcode
            if worker.retiring:
                continue
            if not worker.ready:
                if not self._ever_ready and self._watcher is None:
                    logger.error("Worker [%s] failed to start (exit code %s)", worker.pid, code)
                    return EXIT_STARTUP_FAILED
                logger.error("Worker [%s] exited before serving (code %s)", worker.pid, code)
                # Do not spin on an app that cannot start: retry later, or after a code change.
                self._respawn_after = time.monotonic() + 1.0
                continue
            if code == 0:  # a worker exits by itself only after --limit-max-requests
                logger.info("Worker [%s] reached --limit-max-requests; replacing it", worker.pid)
            else:
                logger.warning("Worker [%s] died (exit code %s); replacing it", worker.pid, code)
            self._spawn(worker.slot)
        missing = self._worker_count() - len([w for w in self.workers if not w.retiring])
        if missing > 0 and time.monotonic() >= self._respawn_after and self._watcher is None:
            for _ in range(missing):
                self._spawn()
        return None

    # --- workers -------------------------------------------------------------------------------
    def _free_slot(self) -> int:
        taken = {w.slot for w in self.workers if not w.retiring}
        return next(slot for slot in range(1, len(taken) + 2) if slot not in taken)

    def _spawn(self, slot: int | None = None) -> Worker:
        slot = slot if slot is not None else self._free_slot()
        os.environ[WORKER_INDEX_VARIABLE] = str(slot)  # a spawned child copies the environment
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main,
            args=(self.config, self.sockets, writer),
            name="asgi-server-worker",
        )
        process.start()
        writer.close()  # the worker holds the other copy: EOF here means it is gone
        worker = Worker(process, reader, slot=slot)
        self.workers.append(worker)
        logger.info("Started worker [%s]", process.pid)
        return worker

    def _restart_all(self) -> None:
        """Replace every current worker, one at a time, so that some worker always serves."""
        for old in [w for w in self.workers if not w.retiring]:
            if self.config.endpoints:  # the new worker must bind the same endpoints
                self._retire(old)
                old.process.join(self.config.timeout_graceful_shutdown + 5)
            new = self._spawn(old.slot)
            if not self._wait_ready(new):
                if self._stop_requested():
                    return  # the main loop stops every worker, the new one included
                logger.error(
                    "The new worker [%s] did not start; the old one keeps serving. Fix the "
                    "error above (the next change reloads again).",
                    new.pid,
                )
                self._retire(new)
                return
            if not self.config.endpoints:
                self._retire(old)
        # Workers that died meanwhile (say, of the error this reload fixes) come back too.
        for _ in range(self._worker_count() - len([w for w in self.workers if not w.retiring])):
            self._spawn()

    def _wait_ready(self, worker: Worker) -> bool:
        deadline = time.monotonic() + self.config.timeout_worker_startup
        while not worker.ready and worker.process.is_alive() and time.monotonic() < deadline:
            self._wait(0.1)
            if self._stop_requested():
                return False
        return worker.ready

    def _stop_requested(self) -> bool:
        return signal.SIGINT in self._signals or signal.SIGTERM in self._signals

    def _retire(self, worker: Worker) -> None:
        worker.retiring = True
        if worker.process.is_alive() and worker.pid is not None:
            os.kill(worker.pid, signal.SIGTERM)

    def _stop_all(self) -> None:
        """SIGTERM every worker, wait for their graceful shutdowns, SIGKILL stragglers."""
        for worker in self.workers:
            self._retire(worker)
        deadline = time.monotonic() + self.config.timeout_graceful_shutdown + 5
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                logger.warning("Worker [%s] did not stop in time; killing it", worker.pid)
                worker.process.kill()
                worker.process.join()
        self.workers.clear()

    # --- signals -------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        # The handlers only record the signal; set_wakeup_fd wakes _wait() at once.
        self._wakeup_writer.setblocking(False)
        signal.set_wakeup_fd(self._wakeup_writer.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, sig: int, frame: object) -> None:
        self._signals.append(sig)
