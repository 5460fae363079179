"""The Django login case in headless Chromium: a user signs in through Django's login form, and
the page's WAMP session (autobahn.js, authmethod ``cookie``) is that user, as the page sees it in
the session's details; an anonymous browser is refused, or joins as ``guest`` where the realm
offers ``anonymous``. Signing out in another tab ends that user's WAMP sessions, and only theirs.

The site is tests/browser/django_wamp_site/ served by ``python -m asgi_server``: one process, then
two on one Redis channel layer, where signing out through one ends the user's WAMP sessions on
the other too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import TIMEOUT_MS
from tests.conftest import REPO_ROOT
from tests.consumers.test_django_suite import sqlite_directory

APP = "tests.browser.django_wamp_site.asgi:application"
SETTINGS = "tests.browser.django_wamp_site.settings"
USERS = (
    "import django; django.setup()\n"
    "from django.core.management import call_command\n"
    "from django.contrib.auth.models import Group, User\n"
    "call_command('migrate', verbosity=0)\n"
    "User.objects.create_user('alice', password='alice-pw').groups.add("
    "Group.objects.create(name='editors'))\n"
    "User.objects.create_user('bob', password='bob-pw')\n"
)

# Joins ``realm`` with ``authmethods`` and resolves with what the page sees: the WELCOME details,
# or how the connection closed. Later closes land in window.ended[realm].
CONNECT = """async ({url, realm, authmethods}) => new Promise((resolve) => {
  window.ended = window.ended || {};
  window.sessions = window.sessions || {};
  const connection = new autobahn.Connection({url, realm, authmethods, max_retries: 0});
  connection.onopen = (session, details) => {
    window.sessions[realm] = session;
    resolve({joined: true, details});
  };
  connection.onclose = (reason, details) => {
    window.ended[realm] = details.reason;
    resolve({joined: false, reason, details});
    return false;
  };
  connection.open();
})"""


@pytest.fixture
def site_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A migrated SQLite database with alice (group ``editors``) and bob (no group); the server
    process started by the test inherits it."""
    database_dir = Path(sqlite_directory(tmp_path))
    monkeypatch.setenv("WAMP_SITE_DB_PATH", str(database_dir / "site.sqlite3"))
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", SETTINGS)
    result = subprocess.run(
        [sys.executable, "-c", USERS], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    yield
    shutil.rmtree(database_dir, ignore_errors=True)


def sign_in(browser: Any, base_url: str, username: str) -> Any:
    """A new browser context signed in through Django's login form, on the home page."""
    from playwright.sync_api import expect

    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(base_url + "/accounts/login/?next=/")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-pw")
    page.click("#sign-in")
    expect(page.locator("#user")).to_have_text(username)
    return page


def connect(page: Any, base_url: str, realm: str, authmethods: list[str]) -> Any:
    url = base_url.replace("http://", "ws://") + "/ws"
    return page.evaluate(CONNECT, {"url": url, "realm": realm, "authmethods": authmethods})


def identity(seen: dict[str, Any]) -> tuple[str, str, str, str]:
    assert seen["joined"], seen
    details = seen["details"]
    return (details["authid"], details["authrole"], details["authmethod"], details["authprovider"])


@pytest.mark.timeout(120)  # a server process and Chromium on a shared 2-core machine
def test_the_django_login_is_the_pages_wamp_session(
    browser: Any, run_server_process: Callable[..., Any], site_database: None
) -> None:
    with run_server_process(APP, "--log-level", "warning") as server:
        base = server.url
        alice = sign_in(browser, base, "alice")
        assert identity(connect(alice, base, "site", ["cookie"])) == (
            "alice",
            "editors",
            "cookie",
            "django",
        )
        assert identity(connect(alice, base, "open", ["cookie", "anonymous"]))[:2] == (
            "alice",
            "editors",
        )
        assert alice.evaluate("window.sessions.site.call('com.site.whoami')") == "served"
        bob = sign_in(browser, base, "bob")
        assert identity(connect(bob, base, "site", ["cookie"]))[:2] == ("bob", "authenticated")

        stranger = browser.new_context().new_page()
        stranger.set_default_timeout(TIMEOUT_MS)
        stranger.goto(base + "/")
        refused = connect(stranger, base, "site", ["cookie"])
        assert refused["joined"] is False
        assert refused["details"]["reason"] == "wamp.error.no_auth_method", refused
        guest = identity(connect(stranger, base, "open", ["cookie", "anonymous"]))
        assert guest[1:3] == ("guest", "anonymous") and guest[0].startswith("anonymous-")

        # Alice signs out in another tab: both her WAMP sessions end, bob's and the guest's stay.
        other_tab = alice.context.new_page()
        other_tab.goto(base + "/")
        other_tab.click("#sign-out")
        other_tab.wait_for_url(base + "/accounts/login/")
        alice.wait_for_function("window.ended.site && window.ended.open")
        assert alice.evaluate("window.ended") == {
            "site": "wamp.close.logout",
            "open": "wamp.close.logout",
        }
        assert bob.evaluate("window.sessions.site.call('com.site.whoami')") == "served"
        assert stranger.evaluate("window.sessions.open.call('com.site.whoami')") == "served"
        assert bob.evaluate("window.ended") == {}
        # Her browser has no Django session any more: the cookie method no longer applies.
        again = connect(alice, base, "site", ["cookie"])
        assert again["details"]["reason"] == "wamp.error.no_auth_method", again


def wait_for_feed(base_url: str) -> None:
    """Until the server's router has joined the cluster's auth feed (its /feed-ready)."""
    import httpx

    deadline = time.monotonic() + 20
    while httpx.get(base_url + "/feed-ready", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the router's auth feed did not start"
        time.sleep(0.05)


@pytest.mark.timeout(150)
def test_signing_out_on_one_process_ends_the_sessions_on_another(
    browser: Any,
    run_server_process: Callable[..., Any],
    site_database: None,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WAMP_SITE_LAYER_URL", f"{redis_url}?prefix=site-{os.urandom(4).hex()}")
    with (
        run_server_process(APP, "--log-level", "warning") as first,
        run_server_process(APP, "--log-level", "warning") as second,
    ):
        for server in (first, second):
            wait_for_feed(server.url)
        alice = sign_in(browser, first.url, "alice")
        assert identity(connect(alice, first.url, "site", ["cookie"]))[0] == "alice"
        # The session cookie is the host's (ports share cookies): the second process's page
        # is alice's too, and so is its WAMP session there.
        on_second = alice.context.new_page()
        on_second.set_default_timeout(TIMEOUT_MS)
        on_second.goto(second.url + "/")
        assert identity(connect(on_second, second.url, "site", ["cookie"]))[0] == "alice"
        bob = sign_in(browser, second.url, "bob")
        assert identity(connect(bob, second.url, "site", ["cookie"]))[0] == "bob"

        alice.click("#sign-out")  # through the first process
        alice.wait_for_url(first.url + "/accounts/login/")
        on_second.wait_for_function("window.ended && window.ended.site")
        assert on_second.evaluate("window.ended") == {"site": "wamp.close.logout"}
        assert bob.evaluate("window.sessions.site.call('com.site.whoami')") == "served"
