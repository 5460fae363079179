"""docs/tutorials/tasks.md runs as written, on a private Redis: a task worker runs queued jobs
and a cron job; then a server and a channel worker hand a job over HTTP to the worker and its
result back to a WebSocket of the server."""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from tests.docs._tutorial import shell_lines, tutorial_run, wait_for_line

PAGE = "tutorials/tasks.md"


def page_parts() -> tuple[list[str], list[str]]:
    """The task queue's commands, and those of the channel worker (from its server on)."""
    lines = shell_lines(PAGE)
    split = next(i for i, line in enumerate(lines) if "examples.background.app" in line)
    return lines[:split], lines[split:]


@pytest.mark.timeout(300)  # a whole tutorial's processes, on a loaded machine
def test_the_task_queue_and_cron_run_as_written(redis_url: str) -> None:
    queue_lines, _ = page_parts()
    with tutorial_run(TUTORIAL_CHANNEL_LAYERS_URL=redis_url) as run:
        for line in queue_lines:
            run.run(line)
        enqueue, status, dead = run.outputs
        assert dead == "(no dead letters)\n"
        assert "{'name': 'cat', 'thumbnail': 'cat-128x128.png'}" in enqueue
        assert "{'name': 'dog', 'thumbnail': 'dog-128x128.png'}" in enqueue
        row = next(line.split() for line in status.splitlines() if "thumbnail.make" in line)
        assert row[:2] == ["thumbnails", "thumbnail.make"] and row[5] == "2", status  # done
        worker, _ = run.servers[0]
        wait_for_line(run.logs[0], "Task worker on thumbnails (1 tasks), concurrency 4", worker)
        wait_for_line(run.logs[0], "heartbeat", worker)


@pytest.mark.timeout(300)  # a whole tutorial's processes, on a loaded machine
def test_the_channel_worker_runs_as_written(redis_url: str) -> None:
    _, channel_lines = page_parts()
    (curl,) = [line for line in channel_lines if line.startswith("curl")]
    with tutorial_run(TUTORIAL_CHANNEL_LAYERS_URL=redis_url) as run:
        for line in channel_lines[: channel_lines.index(curl)]:
            run.run(line)
        assert len(run.servers) == 2  # the server and the worker
        url = f"ws://127.0.0.1:{run.port('8000')}/ws/results"
        with connect(url, open_timeout=10) as results:
            run.run(curl)
            assert run.outputs[-1] == "queued cat\n"
            done = json.loads(results.recv(timeout=15))
        assert done == {"name": "cat", "thumbnail": "cat-128x128.png"}
