"""Crossbar.io config files run with the real CLI: the two classic tutorial configs end to end,
and clear startup errors for what Crossway cannot run."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from consumers.web import crossbar
from consumers.web.crossbar import CrossbarConfigError
from tests.conftest import REPO_ROOT, get_free_port, wait_until_accepting
from tests.wamp.conftest import Wamp

ALL_PERMISSIONS = {
    "uri": "",
    "match": "prefix",
    "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
    "disclose": {"caller": False, "publisher": False},
    "cache": True,
}
#: `crossbar init`'s node config: a static root and a WAMP path on realm1, anonymous may do all.
TUTORIAL: dict[str, Any] = {
    "version": 2,
    "controller": {},
    "workers": [
        {
            "type": "router",
            "realms": [
                {
                    "name": "realm1",
                    "roles": [{"name": "anonymous", "permissions": [ALL_PERMISSIONS]}],
                }
            ],
            "transports": [
                {
                    "type": "web",
                    "endpoint": {"type": "tcp", "port": 8080},
                    "paths": {
                        "/": {"type": "static", "directory": "../web"},
                        "ws": {"type": "websocket"},
                    },
                }
            ],
        }
    ],
}


def tutorial(port: int, pusher: bool = False) -> dict[str, Any]:
    """The tutorial config on ``port``; with ``pusher``, the older tutorial's ``notify`` path."""
    config = copy.deepcopy(TUTORIAL)
    transport = config["workers"][0]["transports"][0]
    transport["endpoint"]["port"] = port
    if pusher:
        transport["paths"]["notify"] = {"type": "pusher", "realm": "realm1", "role": "anonymous"}
    return config


def node_dir(root: Path, config: dict[str, Any] | str) -> Path:
    """A project as the tutorials lay it out: web/index.html and .crossbar/config.json."""
    (root / "web").mkdir(exist_ok=True)
    (root / "web" / "index.html").write_text("<h1>Hello from the tutorial</h1>")
    (root / ".crossbar").mkdir(exist_ok=True)
    path = root / ".crossbar" / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config, indent=4))
    return path


@contextlib.contextmanager
def cli(config_path: Path, port: int, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m asgi_server --crossbar-config PATH`` until it accepts on ``port``."""
    command = [sys.executable, "-m", "asgi_server", "--crossbar-config", str(config_path), *args]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            try:
                wait_until_accepting("127.0.0.1", port, process)
            except RuntimeError:
                log.seek(0)
                raise RuntimeError(log.read().decode(errors="replace")) from None
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)


def run_cli(config_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI on a config that must fail at startup."""
    command = [sys.executable, "-m", "asgi_server", "--crossbar-config", str(config_path)]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)


async def test_tutorial_static_and_websocket(tmp_path: Path) -> None:
    port = get_free_port()
    with cli(node_dir(tmp_path, tutorial(port)), port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            page = await http.get("/")
            assert page.status_code == 200 and "Hello from the tutorial" in page.text
        wamp = Wamp(None, f"ws://127.0.0.1:{port}/ws", "127.0.0.1", port, "json")
        try:
            callee, caller = await wamp.connect(), await wamp.connect(serializer="msgpack")
            await callee.register(lambda a, b: a + b, "com.example.add2")
            assert await caller.call("com.example.add2", 2, 3) == 5
            got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            await callee.subscribe(got.set_result, "com.example.oncounter")
            caller.publish("com.example.oncounter", 7)
            assert await asyncio.wait_for(got, 5) == 7
        finally:
            await wamp.close()


async def test_a_redirect_path(tmp_path: Path) -> None:
    port = get_free_port()
    config = tutorial(port)
    paths = config["workers"][0]["transports"][0]["paths"]
    paths["old"] = {"type": "redirect", "url": "https://crossbar.io/docs/"}
    with cli(node_dir(tmp_path, config), port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            moved = await http.get("/old")
            assert moved.status_code == 302
            assert moved.headers["location"] == "https://crossbar.io/docs/"
            assert (await http.get("/")).status_code == 200


ECHO_WSGI = """
import json

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    keys = ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING")
    return [json.dumps({key: environ[key] for key in keys}).encode()]
"""


async def test_wsgi_and_static_paths_answer_without_the_trailing_slash(tmp_path: Path) -> None:
    """As Twisted's resource tree in Crossbar.io: ``/app`` reaches the wsgi path with
    SCRIPT_NAME "/app" and PATH_INFO "" (WSGIResource is a leaf), ``/files`` redirects to
    ``/files/`` (static.File of a directory); ``/apple`` is neither."""
    port = get_free_port()
    config = tutorial(port)
    paths = config["workers"][0]["transports"][0]["paths"]
    paths["app"] = {"type": "wsgi", "module": "echo_wsgi", "object": "application"}
    paths["files"] = {"type": "static", "directory": "../web"}
    config_path = node_dir(tmp_path, config)
    (config_path.parent / "echo_wsgi.py").write_text(ECHO_WSGI)
    with cli(config_path, port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for url, script_name, path_info, query in [
                ("/app", "/app", "", ""),
                ("/app?x=1", "/app", "", "x=1"),
                ("/app/", "/app", "/", ""),
                ("/app/a/b", "/app", "/a/b", ""),
            ]:
                answer = await http.get(url)
                assert answer.status_code == 200, url
                expected = {"SCRIPT_NAME": script_name, "PATH_INFO": path_info}
                assert answer.json() == {**expected, "QUERY_STRING": query}, url
            moved = await http.get("/files")
            assert moved.is_redirect and moved.headers["location"] == "/files/"
            page = await http.get("/files", follow_redirects=True)
            assert page.status_code == 200 and "Hello from the tutorial" in page.text
            for missing in ("/apple", "/app.py", "/filesystem"):
                assert (await http.get(missing)).status_code == 404, missing


async def test_tutorial_with_the_notify_pusher(tmp_path: Path) -> None:
    port = get_free_port()
    with cli(node_dir(tmp_path, tutorial(port, pusher=True)), port):
        wamp = Wamp(None, f"ws://127.0.0.1:{port}/ws", "127.0.0.1", port, "json")
        try:
            subscriber = await wamp.connect()
            events: asyncio.Queue[Any] = asyncio.Queue()
            await subscriber.subscribe(
                lambda *a, **k: events.put_nowait((a, k)), "com.myapp.topic1"
            )
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                body = {"topic": "com.myapp.topic1", "args": ["Hello, world"]}
                answer = await http.post("/notify", json=body)
            assert answer.status_code == 200 and isinstance(answer.json()["id"], int)
            assert await asyncio.wait_for(events.get(), 5) == (("Hello, world",), {})
        finally:
            await wamp.close()


def test_a_trailing_comma_is_reported_with_line_and_column(tmp_path: Path) -> None:
    text = json.dumps(tutorial(8080, pusher=True), indent=4)
    text = text.replace('"role": "anonymous"\n', '"role": "anonymous",\n', 1)
    result = run_cli(node_dir(tmp_path, text))
    assert result.returncode == 2
    comma_line = text[: text.index('"role": "anonymous",\n')].count("\n") + 1
    # Python 3.13's json names the comma's own line ("Illegal trailing comma"); 3.11 names the
    # line after it, where a property name was expected. Either points the user at the comma.
    assert any(f"line {line}, column" in result.stderr for line in (comma_line, comma_line + 1)), (
        result.stderr
    )
    assert "trailing comma" in result.stderr
    assert "Traceback" not in result.stderr


def test_what_crossway_cannot_run_is_named_item_by_item(tmp_path: Path) -> None:
    config = tutorial(8080)
    worker = config["workers"][0]
    worker["realms"][0]["rlinks"] = [{"id": "other", "realm": "realm1"}]
    worker["transports"].append({"type": "mqtt", "endpoint": {"type": "tcp", "port": 1883}})
    worker["transports"][0]["paths"]["proxy"] = {"type": "reverseproxy", "host": "example.com"}
    config["workers"] += [
        {"type": "container", "components": []},
        {"type": "guest", "executable": "node", "arguments": ["app.js"]},
    ]
    result = run_cli(node_dir(tmp_path, config))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    for needle in (
        "container workers",
        "guest workers",
        "MQTT",
        "router-to-router",
        "reverseproxy",
    ):
        assert sum(needle in line for line in lines) == 1, (needle, result.stderr)


def test_paths_and_endpoints_map_onto_server_options(tmp_path: Path) -> None:
    config = tutorial(8123, pusher=True)
    transport = config["workers"][0]["transports"][0]
    transport["endpoint"] = {
        "type": "tcp",
        "port": 8443,
        "interface": "127.0.0.1",
        "tls": {"key": "server.key", "certificate": "server.crt"},
    }
    path = node_dir(tmp_path, config)
    settings = crossbar.server_settings(path)
    assert settings["host"] == "127.0.0.1" and settings["port"] == 8443
    assert settings["ssl_keyfile"] == str(tmp_path / ".crossbar" / "server.key")
    assert settings["app"] == "consumers.web.crossbar:application"
    transport["endpoint"] = {"type": "unix", "path": "node.sock"}
    assert crossbar.server_settings(node_dir(tmp_path, config))["uds"].endswith("node.sock")
    config["workers"].append(copy.deepcopy(config["workers"][0]))
    assert crossbar.server_settings(node_dir(tmp_path, config))["workers"] == 2


def test_bridge_paths_need_known_realms_and_roles(tmp_path: Path) -> None:
    config = tutorial(8080)
    paths = config["workers"][0]["transports"][0]["paths"]
    paths["call"] = {"type": "caller", "realm": "realm2", "role": "anonymous"}
    paths["hook"] = {"type": "webhook", "realm": "realm1", "role": "backend", "options": {}}
    with pytest.raises(CrossbarConfigError) as error:
        crossbar.build(node_dir(tmp_path, config))
    message = str(error.value)
    assert "realm 'realm2' is not defined" in message
    assert "role 'backend' is not defined in realm 'realm1'" in message


async def test_a_yaml_config_runs_too(tmp_path: Path) -> None:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    port = get_free_port()
    json_path = node_dir(tmp_path, tutorial(port, pusher=True))
    yaml_path = json_path.with_suffix(".yaml")
    yaml_path.write_text(yaml.safe_dump(tutorial(port, pusher=True)))
    with cli(yaml_path, port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert "Hello from the tutorial" in (await http.get("/")).text
            answer = await http.post("/notify", json={"topic": "com.myapp.topic1"})
            assert answer.status_code == 200


def test_a_yaml_syntax_error_is_reported(tmp_path: Path) -> None:
    path = node_dir(tmp_path, tutorial(8080)).with_suffix(".yaml")
    path.write_text("version: 2\nworkers: [\n  {type: router\n")
    result = run_cli(path)
    assert result.returncode == 2 and "invalid YAML" in result.stderr
    assert "line" in result.stderr and "Traceback" not in result.stderr


async def test_two_transports_listen_together(tmp_path: Path) -> None:
    web_port, wamp_port = get_free_port(), get_free_port()
    config = tutorial(web_port)
    config["workers"][0]["transports"].append(
        {
            "type": "websocket",
            "endpoint": {"type": "tcp", "port": wamp_port, "interface": "127.0.0.1"},
            "serializers": ["json"],
        }
    )
    with cli(node_dir(tmp_path, config), web_port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web_port}") as http:
            assert "Hello from the tutorial" in (await http.get("/")).text
        direct = Wamp(None, f"ws://127.0.0.1:{wamp_port}/", "127.0.0.1", wamp_port, "json")
        via_web = Wamp(None, f"ws://127.0.0.1:{web_port}/ws", "127.0.0.1", web_port, "json")
        try:
            callee, caller = await direct.connect(), await via_web.connect()
            await callee.register(lambda: "same router", "com.example.where")
            assert await caller.call("com.example.where") == "same router"
            with pytest.raises(InvalidStatus) as refused:
                # msgpack is not among that transport's serializers
                await websockets.connect(direct.url, subprotocols=[Subprotocol("wamp.2.msgpack")])
            assert refused.value.response.status_code == 400
        finally:
            await direct.close()
            await via_web.close()


async def test_identical_router_workers_become_worker_processes(tmp_path: Path) -> None:
    port = get_free_port()
    config = tutorial(port)
    config["workers"].append(copy.deepcopy(config["workers"][0]))
    with cli(node_dir(tmp_path, config), port) as process:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        # The supervisor accepts on the shared socket before the spawned workers have imported
        # everything: allow for a slow start on a busy machine.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            for _ in range(4):
                assert "Hello from the tutorial" in (await http.get("/")).text
        commands = [
            Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children.read_text().split()
        ]
        workers = [c for c in commands if b"resource_tracker" not in c and b"redis-server" not in c]
        assert len(workers) == 2
        # With no layer configured the two router workers share an embedded Redis, as one cluster.
        assert len([c for c in commands if b"redis-server" in c]) == 1


async def test_config_roles_restrict_websocket_sessions(tmp_path: Path) -> None:
    """A realm's roles from the config apply to WAMP sessions, not only to the bridge paths."""
    from autobahn.wamp.exception import ApplicationError

    port = get_free_port()
    config = tutorial(port)
    public = {"uri": "com.public.", "match": "prefix", "allow": {"call": True, "register": True}}
    config["workers"][0]["realms"][0]["roles"] = [{"name": "anonymous", "permissions": [public]}]
    with cli(node_dir(tmp_path, config), port):
        wamp = Wamp(None, f"ws://127.0.0.1:{port}/ws", "127.0.0.1", port, "json")
        try:
            client = await wamp.connect()
            await client.register(lambda: "ok", "com.public.ping")
            assert await client.call("com.public.ping") == "ok"
            with pytest.raises(ApplicationError) as refused:
                await client.register(lambda: "no", "com.private.ping")
            assert refused.value.error == "wamp.error.not_authorized"
            with pytest.raises(ApplicationError) as refused:
                await client.subscribe(lambda: None, "com.public.news")  # subscribe not allowed
            assert refused.value.error == "wamp.error.not_authorized"
        finally:
            await wamp.close()
