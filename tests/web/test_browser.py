"""End to end in headless Chromium: a page served by StaticFiles joins the router with
autobahn.js, and a POST to the publisher path reaches it; a Caller POST reaches a procedure the
page registered."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.wamp import Realm, Router
from consumers.web import Caller, Publisher, StaticFiles
from tests.browser.conftest import CHROMIUM_ARGS, TIMEOUT_MS, chromium_path

AUTOBAHN = "autobahn-browser@22.11.1"
CACHE = Path.home() / ".cache" / "crossway" / "autobahn-browser-22.11.1"

PAGE = """<!DOCTYPE html>
<html><body>
<script src="autobahn.min.js"></script>
<script>
window.received = null;
const url = location.origin.replace(/^http/, "ws") + "/ws";
const connection = new autobahn.Connection({url, realm: "realm1"});
connection.onopen = async (session) => {
  await session.subscribe("com.example.news", (args, kwargs) => {
    window.received = {args, kwargs};
  });
  await session.register("com.example.shout", (args) => args[0].toUpperCase());
  window.ready = true;
};
connection.open();
</script>
</body></html>
"""


def autobahn_js() -> Path:
    """autobahn.min.js from npm (cached); fails, never skips, with how to get it."""
    target = CACHE / "autobahn.min.js"
    if target.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to fetch autobahn.js: apt-get install npm", pytrace=False)
    CACHE.mkdir(parents=True, exist_ok=True)
    packed = subprocess.run(
        [npm, "pack", AUTOBAHN, "--silent"], cwd=CACHE, capture_output=True, text=True, timeout=120
    )
    if packed.returncode != 0:
        pytest.fail(f"npm pack {AUTOBAHN} failed: {packed.stderr}", pytrace=False)
    with tarfile.open(CACHE / packed.stdout.strip()) as archive:
        member = archive.extractfile("package/autobahn.min.js")
        assert member is not None
        target.write_bytes(member.read())
    return target


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The page and autobahn.js, in a folder for StaticFiles."""
    shutil.copy(autobahn_js(), tmp_path / "autobahn.min.js")
    (tmp_path / "index.html").write_text(PAGE)
    return tmp_path


@pytest.fixture
def page(run_server: Callable[..., Any], site: Path) -> Iterator[tuple[Any, str]]:
    """A Chromium page joined to realm1 on the real server, and the server's URL."""
    from playwright.sync_api import sync_playwright

    router = Router(realms=[Realm("realm1")])
    http = URLRouter(
        [
            path("notify", Publisher("realm1")),
            path("call", Caller("realm1", call_timeout=5)),
            path("", StaticFiles(site)),
        ]
    )
    app = ProtocolTypeRouter({"http": http, "websocket": URLRouter([path("ws", router.as_asgi())])})
    with run_server(app) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page()
            tab.goto(server.url + "/", timeout=TIMEOUT_MS)
            tab.wait_for_function("window.ready === true", timeout=TIMEOUT_MS)
            yield tab, server.url
        finally:
            browser.close()


def test_a_post_reaches_autobahn_js_in_chromium(page: tuple[Any, str]) -> None:
    tab, url = page
    body = {"topic": "com.example.news", "args": ["hello browser"], "kwargs": {"n": 1}}
    answer = httpx.post(url + "/notify", json=body)
    assert answer.status_code == 200 and "id" in answer.json()
    tab.wait_for_function("window.received !== null", timeout=TIMEOUT_MS)
    assert tab.evaluate("window.received") == {"args": ["hello browser"], "kwargs": {"n": 1}}
    called = httpx.post(url + "/call", json={"procedure": "com.example.shout", "args": ["hi"]})
    assert called.json() == {"args": ["HI"]}
