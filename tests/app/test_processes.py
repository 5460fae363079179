"""Several processes of one app: the embedded Redis the supervisor owns, handlers placed on
processes, and group messages, jobs and WAMP calls that cross from process 1 to process 2."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from channel_layers import build_channel_layer, layer_config_from_url
from consumers.embedded_redis import EmbeddedRedis
from tests.conftest import REPO_ROOT, get_free_port, wait_until_accepting

APP = """
import asyncio, os
from channel_layers import get_channel_layer
from consumers.app import Application

app = Application("multi")
app.processes({1: ["wamp.register:multi.one"], 2: ["queue:jobs", "wamp.register:multi.two"]})
jobs = app.queue("jobs", workers=1)
heard = []

def index():
    return int(os.environ["ASGI_SERVER_WORKER_INDEX"])

@jobs.task("whereami")
def whereami(ctx):
    return index()

@app.on("app.ready")
async def listen(ctx):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("everyone", channel)

    async def receive_forever():
        while True:
            heard.append(await layer.receive(channel))

    app.listener = asyncio.ensure_future(receive_forever())

@app.on("app.stopping")
async def stop(ctx):
    app.listener.cancel()

@app.http.post("/shout")
async def shout(request):
    await get_channel_layer().group_send("everyone", {"type": "shout", "from": index()})
    return {"index": index()}

@app.http.get("/heard")
async def what_was_heard(request):
    return {"index": index(), "from": [message["from"] for message in heard]}

@app.wamp.register("multi.one")
async def one(ctx):
    return index()

@app.wamp.register("multi.two")
async def two(ctx):
    return index()

@app.http.post("/call")
async def call(request):
    try:  # until process 1 has read the cluster's registry, multi.two may be unknown here
        return {"index": index(), "served_by": await app.wamp.call("multi.two", timeout=10)}
    except Exception as exc:
        return {"index": index(), "error": repr(exc)}

@app.http.post("/job")
async def job(request):
    handle = await jobs.enqueue("whereami")
    return {"index": index(), "served_by": await handle.result(timeout=10)}

if __name__ == "__main__":
    raise SystemExit(app.run())
"""


async def test_embedded_redis_starts_serves_a_layer_and_leaves_nothing() -> None:
    redis = EmbeddedRedis()
    environment = redis.start()
    directory = redis.directory
    assert directory is not None and os.stat(directory).st_mode & 0o777 == 0o700
    assert environment == {"CHANNEL_LAYERS_URL": f"unix://{directory}/redis.sock"}
    layer = build_channel_layer(layer_config_from_url(environment["CHANNEL_LAYERS_URL"]))
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "hello"})
        assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "hello"}
    finally:
        await layer.close()
    process = redis.process
    assert process is not None
    redis.stop()
    assert process.poll() is not None
    assert not os.path.exists(directory)


async def test_a_long_temporary_directory_does_not_make_the_socket_path_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    redis = EmbeddedRedis()
    try:
        environment = redis.start()  # a socket path of 200+ bytes could not be bound
        assert len(redis.socket_path) <= 100 and not os.listdir(deep)
        layer = build_channel_layer(layer_config_from_url(environment["CHANNEL_LAYERS_URL"]))
        await layer.send("probe", {"type": "ok"})
        assert await asyncio.wait_for(layer.receive("probe"), 5) == {"type": "ok"}
        await layer.close()
    finally:
        redis.stop()


def _until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Ask again (each time on a new connection, so the kernel may pick another worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"never: {what}")


@pytest.fixture
def multi(tmp_path: Path) -> Any:
    script = tmp_path / "multi.py"
    script.write_text(APP)
    port = get_free_port()
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    environment.pop("CHANNEL_LAYERS_URL", None)
    log = tmp_path / "log.txt"
    with log.open("wb") as output:
        command = [sys.executable, str(script), "--port", str(port), "--no-access-log"]
        process = subprocess.Popen(command, env=environment, stdout=output, stderr=output)
        try:
            wait_until_accepting("127.0.0.1", port, process)
            yield f"http://127.0.0.1:{port}", process, log
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


def _ask(method: str, url: str) -> dict[str, Any]:
    with httpx.Client(headers={"connection": "close"}, timeout=15) as client:
        answer: dict[str, Any] = client.request(method, url).json()
        return answer


def test_two_processes_share_the_embedded_redis(multi: Any) -> None:
    url, process, log = multi
    _until(
        lambda: "is serving" in log.read_text() and log.read_text().count("is serving") >= 2,
        "2 workers",
    )
    started = re.search(
        r"Embedded Redis \[(\d+)\] for the worker processes on (\S+)", log.read_text()
    )
    assert started is not None, log.read_text()
    redis_pid, socket_path = int(started.group(1)), started.group(2)
    # A group message sent by process 1 reaches process 2.
    _until(lambda: _ask("POST", url + "/shout")["index"] == 1, "a shout from process 1")
    _until(
        lambda: (lambda heard: heard["index"] == 2 and 1 in heard["from"])(
            _ask("GET", url + "/heard")
        ),
        "process 2 heard process 1",
    )
    # A job enqueued in process 1 runs in process 2, where its queue is placed.
    answer = _until(
        lambda: (lambda a: a if a["index"] == 1 else None)(_ask("POST", url + "/job")),
        "a job from 1",
    )
    assert answer["served_by"] == 2
    # A WAMP call made in process 1 is served by the callee placed on process 2.
    answer = _until(
        lambda: (lambda a: a if a["index"] == 1 and "served_by" in a else None)(
            _ask("POST", url + "/call")
        ),
        "a WAMP call from 1",
    )
    assert answer["served_by"] == 2
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert not os.path.exists(os.path.dirname(socket_path))  # no files left behind
    with pytest.raises(ProcessLookupError):
        os.kill(redis_pid, 0)
    assert "Embedded Redis stopped" in log.read_text()


def test_a_configured_layer_wins(tmp_path: Path, redis_url: str) -> None:
    script = tmp_path / "multi.py"
    script.write_text(APP)
    port = get_free_port()
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CHANNEL_LAYERS_URL": redis_url}
    log = tmp_path / "log.txt"
    with log.open("wb") as output:
        command = [sys.executable, str(script), "--port", str(port), "--workers", "2"]
        process = subprocess.Popen(command, env=environment, stdout=output, stderr=output)
        try:
            wait_until_accepting("127.0.0.1", port, process)
            assert _ask("POST", f"http://127.0.0.1:{port}/job")["served_by"] == 2
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    assert "Embedded Redis" not in log.read_text()
