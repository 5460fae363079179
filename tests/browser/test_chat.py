"""The chat demo end to end: the real server in a subprocess, two rooms, three headless Chromium
pages (Debian's chromium, driven by Playwright; a fresh profile per browser context). A page
joins its room on load (the one in the address's #room, else the form's default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TIMEOUT_MS = 10_000


def new_page(browser: Any) -> Any:
    """A new page in its own context (no shared cookies or storage)."""
    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


def open_chat(browser: Any, base_url: str, name: str, room: str) -> Any:
    """A new page opened on ``/#room``: it joins ``room`` on load, with nothing clicked."""
    from playwright.sync_api import expect

    page = new_page(browser)
    page.goto(f"{base_url}/#{room}")
    expect(page.locator("#status")).to_have_text(f"Connected to #{room}", timeout=TIMEOUT_MS)
    page.fill("#name", name)
    return page


def record_problems(page: Any) -> list[str]:
    """A list that fills with the page's console errors and warnings, uncaught exceptions and
    failed responses (Chromium logs a 404, say for a favicon, as a console error)."""
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console.{message.type}: {message.text}")

    def on_response(response: Any) -> None:
        if response.status >= 400:
            problems.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", on_response)
    return problems


def switch_room(page: Any, room: str) -> None:
    """Join another room through the form."""
    from playwright.sync_api import expect

    page.fill("#room", room)
    page.click("#join")
    expect(page.locator("#status")).to_have_text(f"Connected to #{room}", timeout=TIMEOUT_MS)


def say(page: Any, text: str) -> None:
    page.fill("#message", text)
    page.press("#message", "Enter")


def test_two_pages_in_a_room_chat_and_another_room_hears_nothing(
    browser: Any, run_server_process: Callable[..., Any]
) -> None:
    from playwright.sync_api import expect

    with run_server_process("examples.chat.app:application", "--log-level", "warning") as server:
        alice = open_chat(browser, server.url, "alice", "lobby")
        bob = open_chat(browser, server.url, "bob", "lobby")
        carol = open_chat(browser, server.url, "carol", "lobby")
        switch_room(carol, "garden")

        say(alice, "hello from alice")
        for page in (alice, bob):
            expect(page.locator("#messages li:not(.notice)")).to_have_text(
                ["alicehello from alice"], timeout=TIMEOUT_MS
            )
        say(bob, "hi alice <script>x</script>")
        expect(alice.locator("#messages li:not(.notice)").nth(1)).to_have_text(
            "bobhi alice <script>x</script>", timeout=TIMEOUT_MS
        )

        # Carol's own message makes a round trip through the layer after the lobby's two:
        # when it is back, anything the lobby leaked to her would have arrived too.
        say(carol, "anyone here?")
        expect(carol.locator("#messages li:not(.notice)")).to_have_text(
            ["carolanyone here?"], timeout=TIMEOUT_MS
        )
        expect(alice.locator("#messages li:not(.notice)")).to_have_count(2)
        expect(bob.locator("#messages li:not(.notice)")).to_have_count(2)


def test_the_page_joins_on_load_and_logs_no_errors(
    browser: Any, run_server_process: Callable[..., Any]
) -> None:
    """Opened on ``/`` the page joins the default room by itself; the console stays free of
    errors (an invalid ``pattern=`` and a missing favicon both log one) and the room input's
    pattern is in force under Chromium's ``v`` flag."""
    from playwright.sync_api import expect

    with run_server_process("examples.chat.app:application", "--log-level", "warning") as server:
        page = new_page(browser)
        problems = record_problems(page)
        page.goto(server.url + "/")
        expect(page.locator("#status")).to_have_text("Connected to #lobby", timeout=TIMEOUT_MS)
        expect(page.locator("#messages li.notice")).to_have_text(["You joined #lobby."])

        page.fill("#room", "no spaces!")
        assert page.eval_on_selector("#room", "input => input.validity.patternMismatch")
        page.fill("#room", "tea-room_2")
        assert not page.eval_on_selector("#room", "input => input.validity.patternMismatch")
        switch_room(page, "tea-room_2")
        assert problems == []
