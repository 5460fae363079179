"""docs/tutorials/deploy.md's files work as the page uses them: ``nginx -t`` accepts the site,
then nginx (the site, on a free port) proxies to the unit's ``ExecStart`` command (its
--workers 4 supervisor on a free port, its environment, a private Redis), and WebSocket clients
of the chat talk through nginx across the workers."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
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
