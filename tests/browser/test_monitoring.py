"""The monitoring demo end to end: the Django project served by a real server process, two real
agents (autobahn-python, psutil) and the staff dashboard in headless Chromium (Debian's, through
Playwright). Settings changed in Django's admin reach the page within a second.
``UPDATE_SCREENSHOTS=1`` rewrites the README's screenshot in examples/monitoring/screenshots/."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, RedisServers, get_free_port, wait_until_accepting
from tests.consumers.test_django_suite import sqlite_directory

APP = "examples.monitoring.asgi:application"
MANAGE = REPO_ROOT / "examples/monitoring/manage.py"
SCREENSHOTS = REPO_ROOT / "examples/monitoring/screenshots"
TIMEOUT_MS = 15_000
AGENTS = {"127.0.0.2": "alpha", "127.0.0.3": "beta"}  # reported addresses: one host, two machines


@pytest.fixture
def monitoring_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A migrated SQLite database with the superuser ``staff`` and the plain user ``plain``; the
    processes the test starts inherit it."""
    database_dir = Path(sqlite_directory(tmp_path))
    monkeypatch.setenv("MONITORING_DB_PATH", str(database_dir / "monitoring.sqlite3"))
    monkeypatch.setenv("MONITORING_DEBUG", "0")
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    users = (
        "from django.contrib.auth.models import User; "
        "User.objects.create_superuser('staff', password='staff-pw'); "
        "User.objects.create_user('plain', password='plain-pw')"
    )
    for command in (["migrate", "--noinput", "-v", "0"], ["shell", "-c", users]):
        result = subprocess.run(
            [sys.executable, str(MANAGE), *command], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
    yield
    shutil.rmtree(database_dir, ignore_errors=True)


@pytest.fixture
def start_agents(tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Starts the two agents against a server URL; stops them after the test."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(*server_urls: str) -> None:
        """One agent per machine of AGENTS, on the server URLs in turn."""
        for index, (ip, name) in enumerate(AGENTS.items()):
            server_url = server_urls[index % len(server_urls)]
            log = (tmp_path / f"agent-{name}.log").open("wb")
            command = [sys.executable, "-m", "examples.monitoring.agent", "--server", server_url]
            command += ["--ip", ip, "--name", name]
            processes.append(
                subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
            )

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=15)


@contextlib.contextmanager
def serve(
    log_path: Path, publish_via: str = "publish_sync", redis_url: str | None = None
) -> Iterator[str]:
    """The demo's server on a free port (its URL); with ``publish_via="http"`` the admin publishes
    by POSTing to the server's own publisher bridge, whose address needs that port up front; with
    ``redis_url`` the channel layer (and so the WAMP router's cluster) is on that Redis."""
    port = get_free_port()
    env = dict(os.environ)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    if publish_via == "http":
        env["MONITORING_PUBLISHER_URL"] = f"http://127.0.0.1:{port}/notify"
    command = [sys.executable, "-m", "asgi_server", APP, "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_until_accepting("127.0.0.1", port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def log_in(browser: Any, base_url: str, username: str) -> Any:
    """A new context signed in through the admin's login form, on the dashboard."""
    page = browser.new_context(viewport={"width": 1000, "height": 640}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(base_url + "/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-pw")
    page.click("input[type=submit]")
    return page


def machine(page: Any, ip: str) -> Any:
    return page.locator(f'section.machine[data-ip="{ip}"]')


def save_in_admin(admin: Any, base_url: str, ip: str, checkbox: str, ticked: bool) -> None:
    """Open the machine's change form in the admin, set one checkbox and save."""
    admin.goto(base_url + "/admin/clients/client/")
    admin.click(f"text={ip}")
    admin.set_checked(f"#id_{checkbox}", ticked)
    with admin.expect_navigation():
        admin.click("input[name=_save]")
    assert admin.url.endswith("/admin/clients/client/")


def watch_both_machines(page: Any) -> tuple[Any, Any]:
    """Wait until the dashboard is live and shows both agents' machines with changing numbers."""
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_have_text("Live")
    alpha, beta = (machine(page, ip) for ip in AGENTS)
    for card in (alpha, beta):
        expect(card.locator("tr.cpu").first).to_be_visible()
        expect(card.locator("tr.memory")).to_have_count(1)
    # Numbers change: each sample is a new reading (several CPUs' loads, memory in bytes).
    first = alpha.locator("tbody").inner_text()
    page.wait_for_function(
        "text => document.querySelector('section.machine[data-ip=\"127.0.0.2\"] tbody')"
        ".innerText !== text",
        arg=first,
    )
    page.wait_for_function("machines.get('127.0.0.3').history.length >= 8")
    return alpha, beta


def change_in_admin(page: Any, admin_url: str, alpha: Any, beta: Any) -> None:
    """Untick CPU of alpha in the admin at ``admin_url``: its CPU rows vanish from the page
    within a second and its agent stops sending them; disable beta: it is hidden."""
    from playwright.sync_api import expect

    admin = page.context.new_page()
    save_in_admin(admin, admin_url, "127.0.0.2", "show_cpus", ticked=False)
    saved = time.monotonic()
    expect(alpha.locator("tr.cpu")).to_have_count(0, timeout=1000)
    assert time.monotonic() - saved < 1.0
    expect(beta.locator("tr.cpu").first).to_be_visible()
    # The agent applied the settings too: its next samples carry no CPU figures.
    page.wait_for_function(
        "machines.get('127.0.0.2').last.cpus === undefined"
        " && machines.get('127.0.0.2').last.memory !== undefined"
    )
    save_in_admin(admin, admin_url, "127.0.0.3", "disabled", ticked=True)
    expect(beta).to_be_hidden(timeout=1000)
    expect(alpha).to_be_visible()


@pytest.mark.timeout(180)  # two agents, a server and Chromium on a shared 2-core machine
@pytest.mark.parametrize("publish_via", ["publish_sync", "http"])
def test_staff_watch_machines_live_and_the_admin_changes_them(
    browser: Any,
    monitoring_database: None,
    start_agents: Callable[..., None],
    tmp_path: Path,
    publish_via: str,
) -> None:
    """The admin's changes reach the page within a second, published in process from the
    signal (``publish_sync``) or, the tutorial's way, by a POST to the publisher bridge."""

    server_log = tmp_path / "server.log"
    with serve(server_log, publish_via) as url:
        start_agents(url)
        page = log_in(browser, url, "staff")
        alpha, beta = watch_both_machines(page)
        update = os.environ.get("UPDATE_SCREENSHOTS") == "1" and publish_via == "publish_sync"
        shots = SCREENSHOTS if update else tmp_path
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "dashboard.png"))

        change_in_admin(page, url, alpha, beta)
    posts = server_log.read_text(errors="replace").count('"POST /notify HTTP/1.1" 200')
    # Each agent's first POST added its machine (a save, so a publication), then the two edits.
    assert posts == (4 if publish_via == "http" else 0)


@contextlib.contextmanager
def demo_command(log_path: Path, *arguments: str) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m examples.monitoring ARGUMENTS`` (the documented one command) until SIGTERM."""
    command = [sys.executable, "-m", "examples.monitoring", *arguments]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def accepting(port: int, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Wait until ``port`` accepts; the command migrates first, slowly on a loaded machine."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            wait_until_accepting("127.0.0.1", port, process)
            return
        except RuntimeError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise


@pytest.mark.timeout(240)  # two servers, three agents, a Redis and Chromium on 2 shared cores
def test_two_server_processes_on_redis_are_one_demo(
    browser: Any,
    monitoring_database: None,
    start_agents: Callable[..., None],
    redis_servers: RedisServers,
    tmp_path: Path,
) -> None:
    """``python -m examples.monitoring --port A --port B --redis URL``: two server processes on
    one Redis layer (their WAMP routers meet there as one cluster), one agent on each: the
    dashboard on process A shows both machines, and the admin served by process B changes them
    on that page within a second. SIGTERM stops the command and every process it started."""
    redis_url = redis_servers.start().url + "/0"
    ports = get_free_port(), get_free_port()
    arguments = ["--port", str(ports[0]), "--port", str(ports[1]), "--redis", redis_url]
    with demo_command(tmp_path / "demo.log", *arguments) as demo:
        first, second = (f"http://127.0.0.1:{port}" for port in ports)
        for port in ports:
            accepting(port, demo)
        start_agents(first, second)  # alpha reports to process A, beta to process B
        page = log_in(browser, first, "staff")
        alpha, beta = watch_both_machines(page)
        page.screenshot(path=str(tmp_path / "two-processes.png"))
        change_in_admin(page, second, alpha, beta)
    assert demo.returncode == 0
    for port in ports:  # the servers went with the command
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_anonymous_and_non_staff_users_are_refused(
    browser: Any, run_server_process: Callable[..., Any], monitoring_database: None, tmp_path: Path
) -> None:
    from playwright.sync_api import expect
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    with run_server_process(APP, "--log-level", "warning") as server:
        anonymous = browser.new_page()
        anonymous.goto(server.url + "/")
        assert "/admin/login/?next=/" in anonymous.url
        plain = log_in(browser, server.url, "plain")
        expect(plain.locator("#id_username")).to_be_visible()  # still the login form
        assert "/admin/login/" in plain.url
        plain.screenshot(path=str(tmp_path / "refused.png"))

        # Over WAMP: no Django login, no cookie authentication; anonymous sessions (the agents)
        # may report but not read the stats.
        ws_url = server.url.replace("http://", "ws://") + "/ws"
        hello: dict[str, Any] = {"roles": {"subscriber": {}, "publisher": {}}}
        with connect(ws_url, subprotocols=[Subprotocol("wamp.2.json")], open_timeout=10) as ws:
            ws.send(json.dumps([1, "realm1", {**hello, "authmethods": ["cookie"]}]))
            assert json.loads(ws.recv(timeout=10))[0:3:2] == [3, "wamp.error.no_auth_method"]
        with connect(ws_url, subprotocols=[Subprotocol("wamp.2.json")], open_timeout=10) as ws:
            ws.send(json.dumps([1, "realm1", {**hello, "authmethods": ["anonymous"]}]))
            welcome = json.loads(ws.recv(timeout=10))
            assert welcome[0] == 2 and welcome[2]["authrole"] == "agent"
            ws.send(json.dumps([32, 1, {}, "clientstats"]))
            error = json.loads(ws.recv(timeout=10))
            assert error[0:2] == [8, 32] and error[4] == "wamp.error.not_authorized"
            ws.send(json.dumps([32, 2, {}, "clientconfig.127.0.0.2"]))
            assert json.loads(ws.recv(timeout=10))[0] == 33  # SUBSCRIBED: its own settings


@pytest.mark.timeout(180)
def test_the_one_command_starts_the_demo_on_an_empty_database(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m examples.monitoring`` as the README says, on no database yet: it migrates,
    creates the staff user ``admin`` (password MONITORING_ADMIN_PASSWORD), serves, and its agent
    reports this machine on the dashboard."""
    from playwright.sync_api import expect

    database_dir = Path(sqlite_directory(tmp_path))
    monkeypatch.setenv("MONITORING_DB_PATH", str(database_dir / "fresh.sqlite3"))
    monkeypatch.setenv("MONITORING_ADMIN_PASSWORD", "admin-pw")
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    port = get_free_port()
    try:
        with demo_command(tmp_path / "demo.log", "--port", str(port)) as demo:
            accepting(port, demo)
            page = log_in(browser, f"http://127.0.0.1:{port}", "admin")
            expect(page.locator("#status")).to_have_text("Live")
            expect(page.locator("section.machine tr.cpu").first).to_be_visible()
            page.screenshot(path=str(tmp_path / "one-command.png"))
        assert demo.returncode == 0
    finally:
        shutil.rmtree(database_dir, ignore_errors=True)


def test_several_ports_without_redis_are_refused_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from examples.monitoring.__main__ import parse_options

    monkeypatch.delenv("REDIS_URL", raising=False)
    assert parse_options([])[0] == [8000]
    with pytest.raises(SystemExit) as refused:
        parse_options(["--port", "8000", "--port", "8001"])
    assert refused.value.code == 2
    assert "add --redis redis://127.0.0.1:6379/0" in capsys.readouterr().err
    ports, env = parse_options(["--port", "8000", "--port", "8001", "--redis", "redis://r:1/0"])
    assert ports == [8000, 8001] and env["REDIS_URL"] == "redis://r:1/0"


def test_agents_fetch_their_settings_by_post(
    run_server_process: Callable[..., Any], monitoring_database: None
) -> None:
    """The agent's first step, against the real server: a POST of its address adds the machine
    once and answers its settings; anything else is refused. What it then samples follows them."""
    import httpx

    from examples.monitoring.agent import collect, fetch_settings

    with run_server_process(APP, "--log-level", "warning") as server:
        settings = fetch_settings(server.url, "127.0.0.9", "gamma")
        assert settings == {
            "ip": "127.0.0.9",
            "name": "gamma",
            "show_cpus": True,
            "show_memory": True,
            "show_disk": True,
            "disabled": False,
            "frequency": 1,
        }
        assert fetch_settings(server.url, "127.0.0.9", "renamed") == settings  # known: unchanged
        endpoint = server.url + "/clients/settings"
        for body in (b"not json", b"{}", b'{"ip": "no address"}', b"[1]"):
            assert httpx.post(endpoint, content=body, timeout=30).status_code == 400, body
        assert httpx.get(endpoint, timeout=30).status_code == 405
    sample = collect(settings)
    assert len(sample["cpus"]) >= 1 and 0 < sample["memory"]["percent"] <= 100
    assert {"cpus", "memory"}.isdisjoint(
        collect({**settings, "show_cpus": False, "show_memory": False})
    )
