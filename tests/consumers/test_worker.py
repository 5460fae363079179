"""``python -m consumers.worker`` in a subprocess, consuming a named channel over Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from channel_layers import build_channel_layer, layer_config_from_url

WORKER_APP = """
from consumers import AsyncConsumer
from consumers.routing import ChannelNameRouter, ProtocolTypeRouter


class Doubler(AsyncConsumer):
    async def double_it(self, message):
        reply = {"type": "doubled", "value": message["value"] * 2, "scope": self.scope}
        await self.channel_layer.send(message["reply_to"], reply)


application = ProtocolTypeRouter({"channel": ChannelNameRouter({"doubler": Doubler.as_asgi()})})
"""


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_worker_consumes_a_named_channel_and_stops_on_signal(
    tmp_path: Path, redis_url: str, stop_signal: signal.Signals
) -> None:
    (tmp_path / "worker_app.py").write_text(textwrap.dedent(WORKER_APP))
    layer_url = f"{redis_url}?prefix=worker-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "worker.log"
    env = {**os.environ, "CHANNEL_LAYERS_URL": layer_url}
    command = [sys.executable, "-m", "consumers.worker", "worker_app:application", "doubler"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=log)
    layer = build_channel_layer(layer_config_from_url(layer_url))
    try:
        reply_to = "replies." + uuid.uuid4().hex
        await layer.send("doubler", {"type": "double.it", "value": 21, "reply_to": reply_to})
        async with asyncio.timeout(15):
            reply = await layer.receive(reply_to)
        assert reply["value"] == 42
        assert reply["scope"] == {"type": "channel", "channel": "doubler"}
        process.send_signal(stop_signal)
        assert await asyncio.to_thread(process.wait, 15) == 0
        output = log_path.read_text()
        assert "Worker consuming channels doubler" in output
        assert "Worker stopped" in output
        assert "Traceback" not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await layer.close()


def test_worker_needs_a_channel() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "consumers.worker", "x:application"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "channels" in result.stderr
