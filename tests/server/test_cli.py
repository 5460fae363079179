"""The command line: options generated from Config, app loading errors, ``python -m``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_server.app_loader import AppLoadError, import_from_string, load_app
from asgi_server.cli import build_parser, config_from_args
from asgi_server.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asgi_server", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_options_come_from_config_fields() -> None:
    config = config_from_args(
        [
            "examples.hello:app",
            "--port",
            "0",
            "--no-access-log",
            "--http",
            "h11",
            "--header",
            "x-a: 1",
            "--header",
            "x-b: 2",
            "--limit-request-body",
            "10",
            "--timeout-keep-alive",
            "1.5",
        ]
    )
    assert config.app == "examples.hello:app"
    assert (config.port, config.access_log, config.http) == (0, False, "h11")
    assert config.headers == ("x-a: 1", "x-b: 2")
    assert (config.limit_request_body, config.timeout_keep_alive) == (10, 1.5)
    assert config_from_args(["m:a"]) == Config(app="m:a")  # defaults come from Config only


def test_every_config_field_has_a_flag() -> None:
    help_text = build_parser().format_help()
    for name in Config.__dataclass_fields__:
        field = Config.__dataclass_fields__[name]
        if field.metadata.get("cli", True):
            flag = field.metadata.get("flag", "--" + name.replace("_", "-"))
            assert flag in help_text, flag


def test_invalid_choice_is_refused() -> None:
    result = run_cli("examples.hello:app", "--http", "nope")
    assert result.returncode == 2
    assert "invalid choice: 'nope'" in result.stderr


def test_bad_module_says_what_is_missing() -> None:
    result = run_cli("no_such_module:app")
    assert result.returncode == 3
    assert "Could not import module 'no_such_module'" in result.stderr


def test_bad_attribute_suggests_the_right_one() -> None:
    result = run_cli("examples.hello:application")
    assert result.returncode == 3
    assert "'examples.hello' has no attribute 'application'; did you mean 'app'?" in result.stderr


def test_loader_errors() -> None:
    with pytest.raises(AppLoadError, match="must be given as 'module:attribute'"):
        import_from_string("examples.hello")
    with pytest.raises(AppLoadError, match="is not callable"):
        load_app("examples.hello:__doc__")


def test_python_m_serves_the_example(run_server_process: Any) -> None:
    with run_server_process("examples.hello:app") as server:
        response = httpx.get(server.url)
    assert response.text == "Hello, world!"
    assert server.process.returncode == 0


def test_console_script() -> None:
    script = Path(sys.executable).parent / "asgi-server"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "usage: asgi-server" in result.stdout and "--limit-concurrency" in result.stdout


@pytest.mark.parametrize("spec", ["_apps:make_app --factory", "_apps:Asgi2App"])
def test_factory_and_asgi2_apps(run_server_process: Any, spec: str) -> None:
    app, *flags = spec.split()
    with run_server_process(app, "--app-dir", "tests/server", *flags) as server:
        response = httpx.get(server.url + "/?seconds=0")
    assert response.status_code == 200
    assert response.text in ("done after 0.0", "asgi2 /")


def test_the_docs_options_page_is_generated_from_config() -> None:
    """The options reference cannot drift from Config: the page asks the docs build for the
    table (docs/hooks/generated.py makes it from Config's fields, as cli.py makes the flags);
    tests/docs/test_site.py checks the built table, flag by flag, default by default."""
    page = (REPO_ROOT / "docs/reference/options.md").read_text()
    assert "<!-- generated: server-options -->" in page
    assert "| `--" not in page, "the options table is generated; do not copy rows into the page"


def test_another_command_line_can_take_every_server_option() -> None:
    """The public API app.run() builds on: Config's options on a parser of one's own."""
    import argparse

    from asgi_server.cli import add_config_options, config_from_namespace, option_flag

    parser = argparse.ArgumentParser(prog="mine")
    parser.add_argument("--mine", default="x")
    add_config_options(parser)
    namespace = vars(
        parser.parse_args(
            ["--port", "9001", "--reload-dir", "a", "--reload-dir", "b", "--ws", "auto"]
        )
    )
    assert namespace.pop("mine") == "x"
    config, notes = config_from_namespace(namespace, app="pkg:app")
    assert (config.app, config.port, config.reload_dirs) == ("pkg:app", 9001, ("a", "b"))
    assert config.workers == Config().workers  # options not given keep Config's defaults
    assert len(notes) == 1 and "wsproto" in notes[0]  # the --ws note, for the caller to log
    reload_dirs = next(f for f in dataclasses.fields(Config) if f.name == "reload_dirs")
    assert option_flag(reload_dirs) == "--reload-dir"
