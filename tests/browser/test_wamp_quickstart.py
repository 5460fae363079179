"""The WAMP quickstart's page (examples/wamp/app.py, docs/tutorials/wamp-quickstart.md) in
headless Chromium: it loads the vendored autobahn.js from the server itself (no internet),
calls com.example.add, and shows what ``POST /notify`` publishes."""

from __future__ import annotations

from typing import Any

import httpx

from tests.browser.test_chat import new_page, record_problems

TIMEOUT_MS = 10_000


def test_the_quickstart_page_calls_and_hears_offline(browser: Any, run_server_process: Any) -> None:
    from playwright.sync_api import expect

    with run_server_process("examples.wamp.app:application") as server:
        base = f"http://{server.host}:{server.port}"
        page = new_page(browser)
        problems = record_problems(page)
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{base}/")
        expect(page.locator("#sum")).to_have_text("5", timeout=TIMEOUT_MS)  # subscribed by then
        answer = httpx.post(f"{base}/notify", content=b"hello from the test", timeout=10)
        assert answer.status_code == 200
        expect(page.locator("#notices li")).to_have_text(["hello from the test"])
        assert f"{base}/autobahn.min.js" in requested
        assert [url for url in requested if not url.startswith(base)] == []  # nothing from outside
        # Chromium's own favicon request fails (console error, no page response); a failed
        # script or WebSocket would be a recorded response, or a page error, or no sum.
        assert [p for p in problems if "Failed to load resource" not in p] == [], problems
