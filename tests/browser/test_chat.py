"""The chat demo end to end: the real server in a subprocess, two rooms, three headless Chromium
pages (Debian's chromium, driven by Playwright; a fresh profile per browser context)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TIMEOUT_MS = 10_000


def open_chat(browser: Any, base_url: str, name: str, room: str) -> Any:
    """A new page (in its own context: no shared cookies or storage) that joined ``room``."""
    from playwright.sync_api import expect

    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(base_url + "/")
    page.fill("#name", name)
    page.fill("#room", room)
    page.click("#join")
    expect(page.locator("#status")).to_have_text(f"Connected to #{room}", timeout=TIMEOUT_MS)
    return page


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
        carol = open_chat(browser, server.url, "carol", "garden")

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
