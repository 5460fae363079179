"""Application HTTP routes through the real server and httpx: typed and Express-style path
parameters, bodies, cookies, headers, streaming, errors and templates."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from consumers.app import Application, HTTPError, Request, Response
from tests.conftest import REPO_ROOT, get_free_port, wait_until_accepting


def make_app() -> Application:
    app = Application("site")

    @app.http.get("/user/{id:int}/")
    async def user(request: Request, id: int) -> dict[str, Any]:
        return {"id": id, "type": type(id).__name__}

    @app.http.get("/post/:slug/")
    async def post(request: Request, slug: str) -> str:
        return f"<h1>{slug}</h1>"

    @app.http.get("/price/{amount:float}")
    async def price(request: Request, amount: float) -> list[float]:
        return [amount * 2]

    @app.http.post("/form")
    def form(request: Request) -> dict[str, Any]:
        return {"form": request.form, "thread": threading.current_thread().name}

    @app.http.put("/json")
    async def put_json(request: Request) -> dict[str, Any]:
        return {"got": request.json, "query": request.query}

    @app.http.delete("/things/{name}")
    async def delete(request: Request, name: str) -> Response:
        return Response(b"", status=204, headers={"x-deleted": name})

    @app.http.get("/whoami")
    async def whoami(request: Request) -> Response:
        body = {"cookie": request.cookies.get("session"), "agent": request.headers["user-agent"]}
        return Response(body, cookies={"seen": "yes"})

    @app.http.get("/stream")
    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[str]:
            for n in range(3):
                yield f"part{n};"

        return Response(chunks(), content_type="text/plain")

    @app.http.get("/boom")
    async def boom(request: Request) -> None:
        raise RuntimeError("kaboom")

    @app.http.get("/value-error")
    def value_error(request: Request) -> int:
        return int("not a number")  # a bug in the handler: a 500, not a 400

    @app.http.get("/secret")
    async def secret(request: Request) -> None:
        raise HTTPError(403, {"error": "staff only"}, headers={"x-why": "role"})

    @app.http.get("/missing")
    def missing(request: Request) -> None:
        raise HTTPError(404)

    return app


@pytest.fixture
def site(run_server: Callable[..., Any]) -> Iterator[str]:
    with run_server(make_app()) as server:
        yield server.url


def test_typed_and_express_parameters(site: str) -> None:
    with httpx.Client(base_url=site) as client:
        assert client.get("/user/42/").json() == {"id": 42, "type": "int"}
        answer = client.get("/post/hello/")
        assert answer.text == "<h1>hello</h1>"
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert client.get("/price/1.5").json() == [3.0]
        # A parameter of the wrong type does not match: 404, and the handler never runs.
        assert client.get("/user/abc/").status_code == 404
        assert client.get("/nowhere").status_code == 404
        assert client.post("/user/1/").status_code == 405


def test_bodies_query_cookies_headers(site: str) -> None:
    with httpx.Client(base_url=site) as client:
        answer = client.post("/form", data={"name": "ada", "lang": "py"}).json()
        assert answer["form"] == {"name": "ada", "lang": "py"}
        assert answer["thread"] != threading.current_thread().name  # a pool thread
        put = client.put("/json?page=2", content=json.dumps({"a": [1, 2]}))
        assert put.json() == {"got": {"a": [1, 2]}, "query": {"page": "2"}}
        assert client.put("/json", content=b"{not json").status_code == 400
        deleted = client.delete("/things/old")
        assert deleted.status_code == 204 and deleted.headers["x-deleted"] == "old"
        me = client.get("/whoami", headers={"cookie": "session=abc", "user-agent": "t/1"})
        assert me.json() == {"cookie": "abc", "agent": "t/1"}
        assert me.cookies["seen"] == "yes"


def test_streaming_response(site: str) -> None:
    with httpx.Client(base_url=site) as client, client.stream("GET", "/stream") as answer:
        assert answer.headers.get("transfer-encoding") == "chunked"
        assert answer.read() == b"part0;part1;part2;"


def test_a_failing_handler_is_a_500_logged_once(
    site: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR), httpx.Client(base_url=site) as client:
        answer = client.get("/boom")
    assert answer.status_code == 500
    failures = [r for r in caplog.records if r.exc_info and "kaboom" in str(r.exc_info[1])]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert "/boom" in failures[0].getMessage()


def test_http_errors_answer_with_their_status(site: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO), httpx.Client(base_url=site) as client:
        secret = client.get("/secret")
        assert (secret.status_code, secret.json()) == (403, {"error": "staff only"})
        assert secret.headers["x-why"] == "role"
        missing = client.get("/missing")
        assert (missing.status_code, missing.text) == (404, "Not Found")
        assert client.put("/json", content=b"\xff\xfe").status_code == 400
        assert client.post("/form", content=b"\xff").status_code == 400
        assert client.get("/value-error").status_code == 500
    failures = [r for r in caplog.records if r.exc_info]
    assert len(failures) == 1 and "/value-error" in failures[0].getMessage()


def test_templates_with_jinja2(run_server: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "hello.html").write_text("<p>{{ name }}</p>")
    app = Application("tpl")
    app.root = str(tmp_path)

    @app.http.get("/hello/:name")
    def hello(request: Request, name: str) -> Response:
        return app.render("hello.html", {"name": name})

    with run_server(app) as server, httpx.Client(base_url=server.url) as client:
        answer = client.get("/hello/<b>")
    assert answer.text == "<p>&lt;b&gt;</p>"  # autoescaped
    assert answer.headers["content-type"].startswith("text/html")


def test_static_directory(run_server: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "a.txt").write_text("static text")
    app = Application("files")
    app.http.root = str(tmp_path)
    app.http.serve("/static", "static/", allow_index=False)
    with run_server(app) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/static/a.txt").text == "static text"
        assert client.get("/static/missing.txt").status_code == 404
        assert client.get("/static/").status_code in (403, 404)  # no listing


DJANGO_SITE = """
import django
from django.conf import settings

BACKEND = "django.template.backends.django.DjangoTemplates"
settings.configure(TEMPLATES=[{"BACKEND": BACKEND, "DIRS": [TEMPLATE_DIR]}])
django.setup()

from consumers.app import Application

app = Application("djt")

@app.http.get("/hello/:name")
def hello(request, name):
    return app.render("page.html", {"name": name})

if __name__ == "__main__":
    raise SystemExit(app.run())
"""


def test_templates_with_django_when_django_is_configured(tmp_path: Path) -> None:
    # A Django-only tag, in a directory only Django's settings name: Jinja2 could not render it.
    (tmp_path / "django_templates").mkdir()
    (tmp_path / "django_templates" / "page.html").write_text("<p>{% firstof missing name %}</p>")
    script = tmp_path / "djt.py"
    script.write_text(DJANGO_SITE.replace("TEMPLATE_DIR", repr(str(tmp_path / "django_templates"))))
    port = get_free_port()
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, str(script), "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(command, env=environment)
    try:
        wait_until_accepting("127.0.0.1", port, process)
        answer = httpx.get(f"http://127.0.0.1:{port}/hello/<b>")
    finally:
        process.terminate()
        process.wait(15)
    assert answer.text == "<p>&lt;b&gt;</p>"  # rendered and autoescaped by Django
    assert answer.headers["content-type"].startswith("text/html")
