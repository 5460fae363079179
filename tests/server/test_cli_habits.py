"""Command lines written for uvicorn or Daphne work as written: short flags, ``--version``,
``--log-level DEBUG``, ``--env-file``, ``--log-config``, ``--ws``, ``--ws-per-message-deflate
false``; and the log lines of every transport and package share one format with the pid."""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client

from asgi_server import __version__
from asgi_server.env_file import EnvFileError, parse_env_file

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ("--app-dir", "tests/server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Served:
    """A server subprocess started with exactly the given arguments, and its log."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: str) -> None:
        self.process, self.log_path = process, log_path
        self.final_output: str | None = None

    def output(self) -> str:
        if self.final_output is not None:
            return self.final_output
        return Path(self.log_path).read_text(errors="replace")


@contextmanager
def serve(*args: str, ready: str = "Serving on") -> Iterator[Served]:
    """``python -m asgi_server *args`` (no --port added) until its log says ``ready``."""
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "asgi_server", *args],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        served = Served(process, log.name)
        try:
            wait_for(lambda: ready in served.output() or process.poll() is not None, ready)
            assert process.poll() is None, f"the server exited: {served.output()}"
            yield served
        finally:
            process.terminate()
            process.wait(15)
            served.final_output = served.output()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asgi_server", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"asgi-server (crossway) {__version__} on ")


def test_daphne_short_flags_bind_port_and_unix_socket(tmp_path: Path) -> None:
    port = free_port()
    with serve("examples.hello:app", "-b", "127.0.0.1", "-p", str(port)) as served:
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "Hello, world!"
    assert f"Serving on http://127.0.0.1:{port}" in served.output()
    path = str(tmp_path / "daphne.sock")
    with serve("examples.hello:app", "-u", path, ready=f"Serving on unix:{path}"):
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport) as client:
            assert client.get("http://localhost/").text == "Hello, world!"
    with serve("examples.hello:app", "--bind", "127.0.0.1", "--port", str(port)):
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200


def lines_of(output: str, logger: str = "") -> list[tuple[str, int, str]]:
    """(level, pid, message) of the lines ``logger`` wrote in the one log format (the server's
    own lines, ``logger=""``, carry no logger name)."""
    origin = f"{re.escape(logger)}: " if logger else ""
    pattern = re.compile(rf"^([A-Z]+) \[(\d+)\] {origin}(.*)$", re.MULTILINE)
    return [(level, int(pid), message) for level, pid, message in pattern.findall(output)]


@pytest.mark.parametrize(
    ("flags", "level"),
    [
        (("--log-level", "WARNING"), "WARNING"),
        (("--log-level", "Debug"), "Debug"),
        (("-v", "0"), "WARNING"),  # Daphne's verbosity
        (("--verbosity", "2"), "Debug"),
    ],
)
def test_three_packages_log_in_one_format_at_log_level_in_any_case(
    run_server_process: Any, flags: tuple[str, str], level: str
) -> None:
    with run_server_process("_apps:package_logs", *APP_DIR, *flags) as server:
        assert httpx.get(server.url).text == "logged"
    output, pid = server.output(), server.process.pid
    assert lines_of(output, "consumers.base") == [
        ("WARNING", pid, "a consumer warning (test line)")
    ]
    expected = [] if level == "WARNING" else [("INFO", pid, "reconnected to Redis (test line)")]
    assert lines_of(output, "channel_layers.redis") == expected
    serving = ("INFO", pid, f"Serving on {server.url}")
    assert (serving in lines_of(output)) is (level == "Debug")  # the server's own, same format


def test_serving_lines_carry_the_worker_pid_on_both_transports() -> None:
    port = free_port()
    args = ("_supervisor_apps:pid", *APP_DIR, "--port", str(port), "--workers", "2")
    with serve(*args, ready="is serving") as served:
        wait_for(lambda: served.output().count("is serving") == 2, "two workers")
    lines = lines_of(served.output())
    serving = [(pid, message) for _, pid, message in lines if message.startswith("Serving on")]
    workers = {int(pid) for pid in re.findall(r"Started worker \[(\d+)\]", served.output())}
    assert len(workers) == 2 and served.process.pid not in workers
    assert sorted(pid for pid, _ in serving) == sorted(workers)
    assert {message for _, message in serving} == {f"Serving on http://127.0.0.1:{port}"}
    port = free_port()
    args = ("_supervisor_apps:pid", *APP_DIR, "--port", str(port), "--transport", "twisted")
    with serve(*args) as served:
        pass
    twisted_line = ("INFO", served.process.pid, f"Serving on http://127.0.0.1:{port} (Twisted)")
    assert twisted_line in lines_of(served.output())


def test_env_file_sets_what_the_environment_lacks(
    run_server_process: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\n\nexport CW_PLAIN=plain value # trailing comment\n"
        "CW_QUOTED=\"two\\nlines\"\nCW_SINGLE='a # b'\nCW_KEPT=from-file\n"
    )
    monkeypatch.setenv("CW_KEPT", "from-environment")
    with run_server_process("_apps:environ", *APP_DIR, "--env-file", str(env_file)) as server:
        answers = {
            name: httpx.get(f"{server.url}/?{name}").text
            for name in ("CW_PLAIN", "CW_QUOTED", "CW_SINGLE", "CW_KEPT")
        }
    assert answers == {
        "CW_PLAIN": "plain value",
        "CW_QUOTED": "two\nlines",
        "CW_SINGLE": "a # b",
        "CW_KEPT": "from-environment",
    }


def test_env_file_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(EnvFileError, match="line 2: expected KEY=VALUE"):
        parse_env_file("A=1\nnot a variable\n")
    bad = tmp_path / "bad.env"
    bad.write_text("OK=1\n1BAD=2\n")
    result = run_cli("examples.hello:app", "--env-file", str(bad))
    assert result.returncode == 2
    assert f"{bad}, line 2: expected KEY=VALUE, got '1BAD=2'" in result.stderr
    missing = run_cli("examples.hello:app", "--env-file", str(tmp_path / "nope.env"))
    assert missing.returncode == 2 and "cannot read --env-file" in missing.stderr


def _dict_config(log_file: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"custom": {"format": "CUSTOM %(name)s | %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_file),
                "formatter": "custom",
            }
        },
        "loggers": {"asgi_server": {"handlers": ["file"], "level": "INFO"}},
    }


INI = """[loggers]
keys=root,asgi_server
[handlers]
keys=file
[formatters]
keys=custom
[logger_root]
handlers=
[logger_asgi_server]
handlers=file
level=INFO
qualname=asgi_server
[handler_file]
class=FileHandler
args=({log_file!r},)
formatter=custom
[formatter_custom]
format=CUSTOM %(name)s | %(message)s
"""


@pytest.mark.parametrize("kind", ["json", "ini"])
def test_log_config_file(run_server_process: Any, tmp_path: Path, kind: str) -> None:
    log_file = tmp_path / "server.log"
    config_file = tmp_path / f"logging.{kind}"
    if kind == "json":
        config_file.write_text(json.dumps(_dict_config(log_file)))
    else:
        config_file.write_text(INI.format(log_file=str(log_file)))
    with run_server_process("examples.hello:app", "--log-config", str(config_file)) as server:
        assert httpx.get(server.url).status_code == 200
    logged = log_file.read_text()
    assert f"CUSTOM asgi_server.error | Serving on {server.url}" in logged
    assert '"GET / HTTP/1.1" 200' in logged  # the access log too
    assert "Serving on" not in server.output()  # the file replaced our stderr handler


def test_log_config_yaml_needs_pyyaml_or_works(run_server_process: Any, tmp_path: Path) -> None:
    config_file = tmp_path / "logging.yaml"
    config_file.write_text("version: 1\ndisable_existing_loggers: false\n")
    if importlib.util.find_spec("yaml") is None:
        result = run_cli("examples.hello:app", "--log-config", str(config_file), "--port", "0")
        assert result.returncode == 2
        assert "a YAML file needs PyYAML (pip install pyyaml)" in result.stderr
    else:
        with run_server_process("examples.hello:app", "--log-config", str(config_file)) as server:
            assert httpx.get(server.url).status_code == 200
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = run_cli("examples.hello:app", "--log-config", str(broken))
    assert result.returncode == 2 and "--log-config" in result.stderr


@pytest.mark.parametrize("value", ["websockets", "auto", "wsproto"])
def test_ws_implementation_names_are_accepted(run_server_process: Any, value: str) -> None:
    with (
        run_server_process("_supervisor_apps:pid", *APP_DIR, "--ws", value) as server,
        websockets.sync.client.connect(server.ws_url) as ws,
    ):
        assert ws.recv(timeout=5) == str(server.process.pid)
    assert f"--ws {value}: Crossway has one WebSocket implementation (wsproto" in server.output()


def test_ws_none_refuses_upgrades(run_server_process: Any) -> None:
    with run_server_process("_supervisor_apps:pid", *APP_DIR, "--ws", "none") as server:
        with pytest.raises(websockets.exceptions.InvalidStatus):
            websockets.sync.client.connect(server.ws_url, open_timeout=5)
        assert httpx.get(server.url).status_code == 200
    assert "one WebSocket implementation" not in server.output()


@pytest.mark.parametrize(
    ("args", "offered"),
    [
        ((), True),
        (("--ws-per-message-deflate", "false"), False),
        (("--ws-per-message-deflate", "True"), True),
        (("--no-ws-per-message-deflate",), False),
    ],
)
def test_ws_per_message_deflate_takes_true_or_false(
    run_server_process: Any, args: tuple[str, ...], offered: bool
) -> None:
    with (
        run_server_process("_supervisor_apps:pid", *APP_DIR, *args) as server,
        websockets.sync.client.connect(server.ws_url, compression="deflate") as ws,
    ):
        assert ws.recv(timeout=5) == str(server.process.pid)
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
    assert ("permessage-deflate" in extensions) is offered


def test_bool_word_given_where_the_app_was_meant_says_so() -> None:
    result = run_cli("--ws-per-message-deflate", "examples.hello:app")
    assert result.returncode == 2
    assert "invalid value 'examples.hello:app'" in result.stderr
    assert "give the app before the options" in result.stderr


def test_missing_attribute_suggests_only_asgi_apps() -> None:
    result = run_cli("examples.chat.app:nosuchattr")
    assert result.returncode == 3
    assert "'URLRouter'" not in result.stderr
    assert "the ASGI apps it defines: 'application'." in result.stderr
    typo = run_cli("examples.chat.app:aplication")
    assert "did you mean 'application'?" in typo.stderr
