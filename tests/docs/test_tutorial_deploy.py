"""docs/tutorials/deploy.md's files work as the page uses them: ``nginx -t`` accepts the site,
then nginx (the site, on a free port) proxies to the unit's ``ExecStart`` command (its
--workers 4 supervisor on a free port, its environment, a private Redis), and WebSocket clients
of the chat talk through nginx across the workers. The unit passes ``systemd-analyze verify``,
and the logging file of step 4 sends the access log to its file."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import REPO_ROOT, get_free_port, wait_until_accepting
from tests.docs._tutorial import check_install_line, shell_lines, wait_for_line

PAGE = "tutorials/deploy.md"
DEPLOY = REPO_ROOT / "examples/deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PUBLIC_NAME = "chat.example.com"


def nginx_main_config(prefix: Path, site: str) -> Path:
    """A main nginx.conf around the site, everything it writes kept under ``prefix``."""
    (prefix / "site.conf").write_text(site)
    main = prefix / "nginx.conf"
    temp = " ".join(
        f"{kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    main.write_text(
        f"pid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} info;\n"
        "worker_processes 1;\nevents { worker_connections 256; }\n"
        f"http {{ access_log {prefix / 'access.log'}; {temp} "
        f"uwsgi_temp_path {prefix / 'uwsgi'}; scgi_temp_path {prefix / 'scgi'}; "
        f"include {prefix / 'site.conf'}; }}\n"
    )
    return main


def unit_settings(unit: str) -> tuple[dict[str, str], list[str]]:
    """The unit's Environment= variables and its ExecStart argv."""
    env = dict(
        line.removeprefix("Environment=").split("=", 1)
        for line in unit.splitlines()
        if line.startswith("Environment=")
    )
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    return env, shlex.split(exec_start.removeprefix("ExecStart="))


@contextlib.contextmanager
def running(argv: list[str], port: int, **popen: object) -> Iterator[subprocess.Popen[bytes]]:
    """A process that serves ``port``; SIGTERM and a wait when done."""
    process = subprocess.Popen(argv, **popen)  # type: ignore[call-overload]
    try:
        wait_until_accepting("127.0.0.1", port, process)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_pages_commands_name_files_that_exist() -> None:
    lines = shell_lines(PAGE)
    for line in lines:
        if "pip install" in line:
            check_install_line(line.split("&&")[-1])
        for path in re.findall(r"examples/deploy/[\w.]+", line):
            assert (REPO_ROOT / path).is_file(), line
    assert any(line.startswith("nginx -t") for line in lines)


@pytest.mark.timeout(300)  # a whole tutorial's processes, on a loaded machine
def test_nginx_proxies_http_and_websockets_to_the_units_workers(
    tmp_path: Path, redis_url: str
) -> None:
    server_port, nginx_port = get_free_port(), get_free_port()
    site = (DEPLOY / "nginx.conf").read_text()
    assert "server 127.0.0.1:8000;" in site and "listen 80;" in site
    site = site.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{server_port};")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{nginx_port};")
    main = nginx_main_config(tmp_path, site)
    check = subprocess.run([NGINX, "-t", "-c", str(main)], capture_output=True, text=True)
    assert check.returncode == 0 and "test is successful" in check.stderr, check.stderr

    env, argv = unit_settings((DEPLOY / "crossway.service").read_text())
    assert argv[0] == "/srv/crossway/.venv/bin/asgi-server" and "--workers" in argv
    argv = [sys.executable, "-m", "asgi_server", *argv[1:]]
    argv[argv.index("--port") + 1] = str(server_port)
    assert env["CHANNEL_LAYERS_URL"].startswith("redis://")
    env = {"PATH": "/usr/bin:/bin", "CHANNEL_LAYERS_URL": redis_url} | {
        key: value for key, value in env.items() if key != "CHANNEL_LAYERS_URL"
    }
    log = tmp_path / "server.log"
    with (
        log.open("wb") as output,
        running(argv, server_port, cwd=REPO_ROOT, env=env, stdout=output, stderr=output) as server,
        running([NGINX, "-c", str(main), "-g", "daemon off;"], nginx_port),
        contextlib.ExitStack() as tabs,
    ):
        # The supervisor accepts at once; each worker says which layer it uses once it serves.
        workers = int(argv[argv.index("--workers") + 1])
        wait_for_line(log, "RedisChannelLayer", server, count=workers, timeout=60)
        base = f"127.0.0.1:{nginx_port}"
        page = httpx.get(f"http://{base}/", headers={"host": PUBLIC_NAME}, timeout=30)
        assert page.status_code == 200 and b"<html" in page.content.lower()
        members = []
        for _ in range(8):
            socket = tabs.enter_context(
                connect(
                    f"ws://{base}/ws/chat/garden/",
                    origin=f"http://{PUBLIC_NAME}",  # type: ignore[arg-type]
                    open_timeout=30,
                )
            )
            assert json.loads(socket.recv(timeout=30))["type"] == "joined"
            members.append(socket)
        members[0].send(json.dumps({"name": "alice", "text": "through nginx"}))
        for socket in members:
            message = json.loads(socket.recv(timeout=30))
            assert message == {"type": "message", "name": "alice", "text": "through nginx"}
    output_text = log.read_text()
    assert "Traceback" not in output_text, output_text[-3000:]


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The page's unit file, with its checkout and venv where this test has them."""
    analyze = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    text = (DEPLOY / "crossway.service").read_text()
    assert "ExecStart=/srv/crossway/.venv/bin/asgi-server " in text
    here = text.replace(
        "/srv/crossway/.venv/bin/asgi-server", str(Path(sys.executable).parent / "asgi-server")
    )
    here = here.replace("WorkingDirectory=/srv/crossway", f"WorkingDirectory={REPO_ROOT}")
    unit = tmp_path / "crossway.service"
    unit.write_text(here)
    verdict = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert verdict.returncode == 0, verdict.stderr
    unit.write_text(here.replace("ExecStart=/", "ExecStart=", 1))
    broken = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert broken.returncode != 0  # the check can fail


@pytest.mark.timeout(120)
def test_the_logging_file_writes_the_access_log_to_a_file(tmp_path: Path) -> None:
    """Step 4: ``--log-config examples/deploy/logging.json`` sends the access log to
    ``access.log`` (in the working directory) and the rest to stderr."""
    port = get_free_port()
    argv = [sys.executable, "-m", "asgi_server", "examples.chat.app:application", "--port"]
    argv += [str(port), "--log-config", str(DEPLOY / "logging.json")]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}
    log = tmp_path / "server.log"
    with (
        log.open("wb") as output,
        running(argv, port, cwd=tmp_path, env=env, stdout=output, stderr=output),
    ):
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200
        access = tmp_path / "access.log"
        deadline = time.monotonic() + 30
        while '"GET / HTTP/1.1" 200' not in (access.read_text() if access.exists() else ""):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    assert '"GET / HTTP/1.1"' not in log.read_text()
    assert re.search(r"^INFO \[\d+\] ", log.read_text(), re.MULTILINE), log.read_text()
