"""``app.run()``: the generated command line, environment variables, and deployment files
checked by nginx -t and systemd-analyze verify."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT, get_free_port, wait_until_accepting

APP = """
from consumers.app import Application

app = Application("site")
app.option("frequency", int, default=5)
app.http.serve("/static", "static/")

@app.http.get("/settings")
async def settings(request):
    return dict(app.settings)

@app.http.get("/boom")
async def boom(request):
    raise RuntimeError("kaboom")

if __name__ == "__main__":
    raise SystemExit(app.run())
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "static").mkdir()
    script = tmp_path / "site.py"
    script.write_text(APP)
    return script


def run(
    script: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    command = [sys.executable, str(script), *args]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=30)


def test_help_lists_server_and_app_options_with_their_variables(site: Path) -> None:
    text = run(site, "--help").stdout
    for expected in (
        "--port",
        "[env: SITE_PORT]",
        "--workers",
        "--frequency",
        "SITE_FREQUENCY",
        "--debug",
        "[env: SITE_DEBUG]",
        "--no-embedded-layer",
    ):
        assert expected in text, expected
    assert "template" in text


def test_options_from_the_environment_and_the_command_line(site: Path) -> None:
    port = get_free_port()
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SITE_PORT": str(port)}
    environment["SITE_FREQUENCY"] = "9"
    command = [sys.executable, str(site), "--frequency", "11", "--no-access-log"]
    process = subprocess.Popen(command, env=environment, cwd=site.parent)
    try:
        wait_until_accepting("127.0.0.1", port, process)
        # The command line wins over SITE_FREQUENCY; SITE_PORT chose the port.
        answer = httpx.get(f"http://127.0.0.1:{port}/settings")
        assert answer.json() == {"frequency": 11}
    finally:
        process.terminate()
        assert process.wait(15) == 0


def test_debug_answers_a_failure_with_its_traceback(site: Path) -> None:
    for args, env in (([], {}), (["--debug"], {}), ([], {"SITE_DEBUG": "1"})):
        port = get_free_port()
        environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **env}
        command = [sys.executable, str(site), "--port", str(port), *args]
        process = subprocess.Popen(
            command, env=environment, cwd=site.parent, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_until_accepting("127.0.0.1", port, process)
            answer = httpx.get(f"http://127.0.0.1:{port}/boom")
        finally:
            process.terminate()
            _, log = process.communicate(timeout=15)
        assert answer.status_code == 500 and log.count("RuntimeError: kaboom") == 1
        if args or env:
            assert "Traceback" in answer.text and "RuntimeError: kaboom" in answer.text
        else:
            assert answer.text == "Internal Server Error"


def test_debug_sets_the_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    from consumers.app import Application
    from consumers.app.cli import parse

    monkeypatch.setenv("DBG_DEBUG", "")  # parse() exports it; monkeypatch restores it
    app = Application("dbg")
    assert parse(app, [])[0].log_level == "info" and not app.debug
    assert parse(app, ["--debug"])[0].log_level == "debug" and app.debug


def test_a_bad_option_value_is_refused(site: Path) -> None:
    result = run(site, "--frequency", "often")
    assert result.returncode == 2 and "invalid int value" in result.stderr


def test_nginx_file_passes_nginx_t(site: Path, tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = run(site, "template", "nginx", "--port", "9000")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "server 127.0.0.1:9000" in text
    assert f"alias {site.parent / 'static'}/;" in text  # nginx serves static files itself
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    (tmp_path / "site.conf").write_text(text)
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{ access_log off; include {tmp_path}/site.conf; }}\n"
    )
    check = [nginx, "-t", "-p", str(tmp_path), "-c", str(main)]
    verdict = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert verdict.returncode == 0, verdict.stderr
    (tmp_path / "site.conf").write_text(text.replace("proxy_pass", "proxy_passs", 1))
    broken = subprocess.run(check, capture_output=True, text=True, timeout=30)
    assert broken.returncode != 0  # the check can fail


def test_systemd_unit_passes_systemd_analyze_verify(site: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    result = run(site, "template", "systemd", "--uds", "/run/site.sock", "--workers", "3")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"ExecStart={sys.executable} {site} --uds /run/site.sock --workers 3" in text
    assert "KillSignal=SIGTERM" in text and "TimeoutStopSec=15" in text
    unit = tmp_path / "site.service"
    unit.write_text(text)
    verdict = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert verdict.returncode == 0, verdict.stderr
    unit.write_text(text.replace(f"ExecStart={sys.executable}", "ExecStart=relative/python"))
    broken = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert broken.returncode != 0  # the check can fail


def test_supervisor_and_docker_files(site: Path) -> None:
    supervisor = run(site, "template", "supervisor", "--timeout-graceful-shutdown", "20").stdout
    assert "[program:site]" in supervisor
    assert "stopsignal=TERM" in supervisor and "stopwaitsecs=25" in supervisor
    docker = run(site, "template", "docker", "--port", "8080").stdout
    assert "EXPOSE 8080" in docker and "STOPSIGNAL SIGTERM" in docker
    assert 'CMD ["python", "site.py", "--host", "0.0.0.0", "--port", "8080"]' in docker
    assert "redis-server" not in docker  # one process: no embedded Redis
    workers = run(site, "template", "docker", "--workers", "2").stdout
    assert '"--workers", "2"]' in workers
    assert "apt-get install -y --no-install-recommends redis-server" in workers
    unknown = run(site, "template", "k8s")
    assert unknown.returncode == 2 and "choose one of nginx" in unknown.stderr
