"""docs/tutorials/tasks.md runs as written: a server and a worker process on a private Redis;
a job queued over HTTP comes back, done by the worker, on a WebSocket of the server."""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from tests.docs._tutorial import shell_lines, tutorial_run

PAGE = "tutorials/tasks.md"


@pytest.mark.timeout(300)  # a whole tutorial's processes, on a loaded machine
def test_the_background_work_tutorial_runs_as_written(redis_url: str) -> None:
    lines = shell_lines(PAGE)
    (curl,) = [line for line in lines if line.startswith("curl")]
    with tutorial_run(TUTORIAL_CHANNEL_LAYERS_URL=redis_url) as run:
        for line in lines[: lines.index(curl)]:
            run.run(line)
        assert len(run.servers) == 2  # the server and the worker
        url = f"ws://127.0.0.1:{run.port('8000')}/ws/results"
        with connect(url, open_timeout=10) as results:
            run.run(curl)
            assert run.outputs[-1] == "queued cat\n"
            done = json.loads(results.recv(timeout=15))
        assert done == {"name": "cat", "thumbnail": "cat-128x128.png"}
