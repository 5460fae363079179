"""docs/tutorials/application.md runs as written: ``python site.py --port 8000`` serves the JSON,
form, static and queue routes (curl, then httpx), the WAMP procedure and subscription
(autobahn-python), the app.ready hook and the cron job; then again with an option from the
environment; then with ``--workers 2`` on the embedded Redis, where the cron job ticks once per
tick, the shared registration answers and each process's subscriber hears the event; then the
deployment files it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.docs._tutorial import TutorialRun, shell_lines, tutorial_run, wait_for_line

PAGE = "tutorials/application.md"
SERVE = "examples/tutorial_app/site.py --port"


def page_phases() -> list[list[str]]:
    """The page's lines, cut where it stops the site (Ctrl-C): to run it again, to ask --help,
    to print deployment files."""
    phases: list[list[str]] = [[]]
    for line in shell_lines(PAGE):
        after_a_server = " template " in line and " template " not in phases[-1][-1]
        if SERVE in line or line.endswith("--help") or after_a_server:
            phases.append([])
        phases[-1].append(line)
    return phases


def run_lines(run: TutorialRun, lines: list[str]) -> dict[str, str]:
    """Run the lines in turn; the output of each that runs in the foreground."""
    outputs: dict[str, str] = {}
    for line in lines:
        run.run(line)
        if SERVE not in line:
            outputs[line] = run.outputs[-1]
            # A clean exit: no traceback, no warning of a task destroyed pending at exit.
            assert "Traceback" not in run.errors[-1], run.errors[-1]
            assert "Exception ignored" not in run.errors[-1], run.errors[-1]
    return outputs


def site_log(run: TutorialRun) -> tuple[Path, subprocess.Popen[bytes]]:
    """The log and the process of the site started last."""
    return run.logs[-1], run.servers[-1][0]


def output_of(outputs: dict[str, str], fragment: str) -> str:
    """The output of the one line containing ``fragment``."""
    (output,) = [text for line, text in outputs.items() if fragment in line]
    return output


@pytest.mark.timeout(300)  # a whole tutorial's processes, on a loaded machine
def test_the_application_tutorial_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    # The page's last step relies on no layer being configured (the app's embedded Redis).
    monkeypatch.delenv("CHANNEL_LAYERS_URL", raising=False)
    install, first, help_, options, workers, templates = page_phases()
    with tutorial_run() as run:
        for line in install:
            run.run(line)
        check_first_run(run, first)
        check_options(run, help_, options)
        check_two_processes(run, workers)
        check_deployment_files(run, templates)


def check_first_run(run: TutorialRun, lines: list[str]) -> None:
    """Step 10: every route, the WAMP client, the hook and the cron job."""
    outputs = run_lines(run, lines)
    log, site = site_log(run)
    wait_for_line(log, "site is ready, greeting 'Hello'", site)
    assert output_of(outputs, "/hello/Ada") == '{"message": "Hello, Ada!"}'
    assert output_of(outputs, "/square/7") == '{"n": 7, "square": 49}'
    assert "404 Not Found" in output_of(outputs, "/square/seven")
    assert output_of(outputs, "/greet") == "<p>Hello, Ada!</p>"
    assert "font-family" in output_of(outputs, "/static/style.css")
    assert output_of(outputs, "/thumbnails") == '{"thumbnail": "cat-128x128.png"}'
    assert "site.add(2, 3) = 5" in output_of(outputs, "tutorial_app.client")
    wait_for_line(log, "greeted: Ada", site)
    wait_for_line(log, "greeted: autobahn-python", site)
    wait_for_line(log, "tick ", site)
    base = f"http://127.0.0.1:{run.port('8000')}"
    with httpx.Client(base_url=base) as http:
        assert http.get("/square/12").json() == {"n": 12, "square": 144}
        assert http.get("/square/1.5").status_code == 404
        page = http.get("/")
        assert page.headers["content-type"].startswith("text/html")
        assert 'action="/greet"' in page.text
        assert http.post("/greet", data={"name": "<b>"}).text == "<p>Hello, &lt;b&gt;!</p>"
        assert http.get("/static/nothing.css").status_code == 404


def check_options(run: TutorialRun, help_: list[str], lines: list[str]) -> None:
    """Step 11: --help lists the site's option; the environment sets it; no access log."""
    run.stop_servers()
    (help_line,) = help_
    run.run(help_line)
    text = " ".join(run.outputs[-1].split())  # argparse wraps lines at the terminal's width
    assert "--greeting STR How the site greets. [default: 'Hello'] [env: SITE_GREETING]" in text
    outputs = run_lines(run, lines)
    log, site = site_log(run)
    assert output_of(outputs, "/hello/Ada") == '{"message": "Bonjour, Ada!"}'
    wait_for_line(log, "site is ready, greeting 'Bonjour'", site)
    assert '"GET /hello/Ada' not in log.read_text()


def check_two_processes(run: TutorialRun, lines: list[str]) -> None:
    """Step 12: two processes on the embedded Redis; the queue, the shared registration, one
    subscriber per process, one cron run per tick."""
    run.stop_servers()
    serve, *rest = lines
    run.run(serve)
    log, site = site_log(run)
    wait_for_line(log, "] for the worker processes on ", site)  # the embedded Redis
    wait_for_line(log, "is serving", site, count=2, timeout=60)
    wait_for_line(log, "site is ready", site, count=2)
    outputs = run_lines(run, rest)
    assert output_of(outputs, "/thumbnails") == '{"thumbnail": "dog-128x128.png"}'
    assert "site.add(2, 3) = 5" in output_of(outputs, "tutorial_app.client")
    wait_for_line(log, "greeted: autobahn-python", site, count=2)
    wait_for_line(log, "tick ", site, count=3, timeout=60)
    ticks = re.findall(r"^tick (.+)$", log.read_text(), re.MULTILINE)
    assert len(ticks) == len(set(ticks)), ticks  # each tick ran in one process only
    assert "procedure_already_exists" not in log.read_text()


def check_deployment_files(run: TutorialRun, lines: list[str]) -> None:
    """Step 13: the nginx site and the systemd unit, from the same options. Before it, the
    page's Ctrl-C stops the two processes cleanly: the embedded Redis outlives them."""
    log, site = site_log(run)
    run.stop_servers()
    assert site.returncode == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Embedded Redis stopped" in text
    assert "unavailable" not in text, text[-3000:]  # no worker lost the layer while stopping
    outputs = run_lines(run, lines)
    port, site = run.port("8000"), REPO_ROOT / "examples/tutorial_app"
    nginx = output_of(outputs, "template nginx")
    assert f"alias {site}/static/;" in nginx and "location = /ws {" in nginx
    assert f"server 127.0.0.1:{port};" in nginx and "proxy_set_header Upgrade" in nginx
    unit = output_of(outputs, "template systemd")
    command = f"{sys.executable} {site}/site.py --host 127.0.0.1 --port {port} --workers 2"
    assert f"ExecStart={command} " in unit and "KillSignal=SIGTERM" in unit
