"""The Django chat demo end to end: two server processes sharing one Redis channel layer, and
headless Chromium (Debian's, driven by Playwright; a fresh context per user).

Alice signs in through server 1 and Bob through server 2; both join #lobby and see each other's
messages, with the authors' names from their sessions. A page in #garden sees none of it; an
anonymous browser is sent to the login page and its WebSocket is refused.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.consumers.test_django_suite import sqlite_directory

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django_chat"
TIMEOUT_MS = 10_000
USERS = ("alice", "bob")  # few: each password hash costs a noticeable fraction of a second


@pytest.fixture
def chat_environment(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A migrated SQLite database with three users, and a Redis layer prefix of its own; the
    server processes started by the test inherit these settings."""
    database_dir = Path(sqlite_directory(tmp_path))  # in RAM: disk fsyncs cost seconds here
    monkeypatch.setenv("CHAT_DB_PATH", str(database_dir / "chat.sqlite3"))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("CHAT_LAYER_PREFIX", f"django-chat-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("CHAT_DEBUG", "0")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(EXAMPLE.parents[1]))
    manage = [sys.executable, "manage.py"]
    users = [f"{name}:{name}-pw" for name in USERS]
    for command in (["migrate", "--noinput", "-v", "0"], ["create_chat_user", *users]):
        result = subprocess.run(
            manage + command, cwd=EXAMPLE, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
    yield
    shutil.rmtree(database_dir, ignore_errors=True)


def sign_in(browser: Any, base_url: str, username: str, room: str) -> Any:
    """A new browser context that opens ``room``, is sent to Django's login page, signs in as
    ``username`` and comes back to the room, connected."""
    from playwright.sync_api import expect

    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base_url}/chat/{room}/")
    expect(page).to_have_url(f"{base_url}/accounts/login/?next=/chat/{room}/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-pw")
    page.click("#sign-in")
    expect(page.locator("#status")).to_have_text(f"Connected to #{room}", timeout=TIMEOUT_MS)
    expect(page.locator("#me")).to_have_text(username)
    return page


def say(page: Any, text: str) -> None:
    page.fill("#message", text)
    page.press("#message", "Enter")


# Opens a WebSocket from the page and reports how it ended: "open", or "closed <code>".
TRY_SOCKET = """(url) => new Promise((resolve) => {
    const socket = new WebSocket(url);
    socket.onopen = () => { socket.close(); resolve("open"); };
    socket.onclose = (event) => resolve(`closed ${event.code}`);
})"""


def test_two_processes_share_rooms_with_authors_and_refuse_anonymous(
    browser: Any, chat_environment: None, run_server_process: Callable[..., Any]
) -> None:
    args = ("--app-dir", str(EXAMPLE), "--log-level", "warning")
    with (
        run_server_process("django_chat.asgi:application", *args) as one,
        run_server_process("django_chat.asgi:application", *args) as two,
    ):
        try:
            chat_in_two_processes(browser, one, two)
        except AssertionError as exc:
            # What the browser saw rarely says why; the servers' logs usually do.
            logs = [f"--- server {n} ---\n{server.output()}" for n, server in ((1, one), (2, two))]
            raise AssertionError("\n".join([str(exc), *logs])) from exc


def chat_in_two_processes(browser: Any, one: Any, two: Any) -> None:
    """The scenario of the module docstring, on servers ``one`` and ``two``."""
    from playwright.sync_api import expect

    alice = sign_in(browser, one.url, "alice", "lobby")
    bob = sign_in(browser, two.url, "bob", "lobby")
    # Alice again, in another browser and another room: that page must hear nothing.
    garden = sign_in(browser, two.url, "alice", "garden")

    say(alice, "hello from alice")
    for page in (alice, bob):
        expect(page.locator("#messages li")).to_have_text(
            ["alice: hello from alice"], timeout=TIMEOUT_MS
        )
    say(bob, "hi alice <b>bold?</b>")
    for page in (alice, bob):
        expect(page.locator("#messages li").nth(1)).to_have_text(
            "bob: hi alice <b>bold?</b>", timeout=TIMEOUT_MS
        )

    anonymous = browser.new_context().new_page()
    anonymous.goto(f"{two.url}/chat/lobby/")
    expect(anonymous).to_have_url(re.compile(r"/accounts/login/\?next=/chat/lobby/$"))
    outcome = anonymous.evaluate(TRY_SOCKET, f"{two.ws_url}/ws/chat/lobby/")
    assert outcome.startswith("closed"), outcome

    # The garden's own message makes a round trip through Redis after the lobby's two: once it
    # is back, anything the lobby leaked to #garden would have arrived as well.
    say(garden, "anyone here?")
    expect(garden.locator("#messages li")).to_have_text(["alice: anyone here?"], timeout=TIMEOUT_MS)
    for page in (alice, bob):
        expect(page.locator("#messages li")).to_have_count(2)
    for server in (one, two):
        assert "Traceback" not in server.output()
