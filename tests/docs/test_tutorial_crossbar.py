"""docs/tutorials/crossbar.md runs as written: asgi-server --crossbar-config serves the example
node's config.json; its backend component (autobahn-python) registers a procedure that the
quickstart's client calls through the router; the static page and the HTTP publisher answer."""

from __future__ import annotations

import json

import pytest

from tests.docs._tutorial import shell_lines, tutorial_run, wait_for_line

PAGE = "tutorials/crossbar.md"


@pytest.mark.timeout(300)  # a whole tutorial's processes, on a loaded machine
def test_the_crossbar_tutorial_runs_as_written() -> None:
    lines = shell_lines(PAGE)
    with tutorial_run() as run:
        for line in lines:
            run.run(line)
            if "crossbar_node.backend" in line:
                wait_for_line(run.logs[-1], "backend ready", run.servers[-1][0])
        client, page, publish = run.outputs
        assert "com.example.add(2, 3) = 5" in client
        assert "event: hello from autobahn-python" in client
        assert "Served by asgi-server from the node's own config" in page
        assert json.loads(publish)["id"] >= 1
