"""examples/app/site.py, the example of issue 15, runs as written: ``python site.py`` starts two
worker processes (it places handlers on two) with an embedded Redis, and serves routes, a
template, static files, an embedded app, a queue placed on process 2, WAMP and a service; so
does ``asgi-server examples.app.site:app --workers 2``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app._wamp_client import close, connect
from tests.conftest import REPO_ROOT, get_free_port, wait_until_accepting

SITE = REPO_ROOT / "examples" / "app" / "site.py"


#: ``python site.py`` (two processes because the app places handlers on two), and the same
#: object served by ``asgi-server`` as any app is, with ``--workers 2``.
COMMANDS = {
    "app.run": [str(SITE)],
    "asgi-server": ["-m", "asgi_server", "examples.app.site:app", "--workers", "2"],
}


@pytest.fixture(params=list(COMMANDS))
def site(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    port = get_free_port()
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    environment.pop("CHANNEL_LAYERS_URL", None)
    log = tmp_path / "site.log"
    with log.open("wb") as output:
        command = [sys.executable, *COMMANDS[request.param], "--port", str(port)]
        command += ["--timeout-graceful-shutdown", "2"]
        process = subprocess.Popen(
            command, env=environment, stdout=output, stderr=output, cwd=REPO_ROOT
        )
        try:
            wait_until_accepting("127.0.0.1", port, process)
            deadline = time.monotonic() + 30
            while log.read_text().count("is serving") < 2:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            yield port, process, log
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


async def _signin(port: int) -> Any:
    """auth.signin is placed on process 1: ask until a connection lands there."""
    deadline = time.monotonic() + 30
    while True:
        client = await connect("127.0.0.1", port)
        try:
            return await client.call("auth.signin", "ada", "secret")
        except Exception as exc:
            if "no_such_procedure" not in str(exc) or time.monotonic() > deadline:
                raise
        finally:
            await close(client)


async def test_the_example_runs_as_written(site: Any) -> None:
    port, process, log = site
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, headers={"connection": "close"}) as http:
        assert (await http.get("/user/42/")).json() == {"id": 42}
        assert (await http.get("/user/x/")).status_code == 404
        form = await http.post("/form", data={"q": "1"})
        assert "<p>{&#39;q&#39;: &#39;1&#39;}</p>" in form.text
        assert (await http.get("/static/hello.txt")).text == "hello static\n"
        assert (await http.get("/blog/news/")).text == "<h1>news</h1>"
        for _ in range(3):  # whichever process takes the request, process 2 runs the job
            answer = await http.post("/videos", json={"path": "a"})
            assert answer.json() == {"result": "a.mp4"}
    assert await _signin(port) == {"user": "ada", "ok": True}
    text = log.read_text()
    assert "Embedded Redis [" in text
    assert text.count("[thumbnailer.py] thumbnailer ready") == 1  # one copy, in process 1
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 30) == 0
    text = log.read_text()
    assert "[thumbnailer.py] thumbnailer stopping" in text
    assert "Embedded Redis stopped" in text
