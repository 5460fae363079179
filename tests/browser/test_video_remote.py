"""The remote-controlled video player end to end: the real server in a subprocess, two players and
their remotes in headless Chromium (Debian's, through Playwright), the QR code read back with
zbarimg. ``UPDATE_SCREENSHOTS=1`` rewrites the README's screenshots in examples/video_remote/."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.video_remote.qr import wsgi_app
from tests.browser.conftest import CHROMIUM_ARGS, chromium_path
from tests.browser.test_chat import record_problems
from tests.conftest import REPO_ROOT, get_free_port, wait_until_accepting

TIMEOUT_MS = 10_000
APP = "examples.video_remote.app:app"
# The README's one command: the Application's own command line; and on two worker processes,
# whose routers meet on the embedded Redis the app starts (a player and its remotes may be
# served by different workers).
ONE_COMMAND = "python -m examples.video_remote"
TWO_WORKERS = "python -m examples.video_remote --workers 2"
# The same pages from the tutorial's setup: static files, a ws path and a wsgi path for the QR code.
CROSSBAR = "--crossbar-config=examples/video_remote/config.json"
SCREENSHOTS = Path(__file__).parents[2] / "examples/video_remote/screenshots"
# Headless Chromium plays sound only when no click is needed for it.
AUTOPLAY_ARGS = [*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture
def autoplay_browser() -> Iterator[Any]:
    """A headless Chromium that lets a page play (with sound) without a click."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=AUTOPLAY_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextlib.contextmanager
def one_command(workers: int = 1) -> Iterator[str]:
    """``python -m examples.video_remote --port <free port>`` as the README starts it; its URL."""
    port = get_free_port()
    command = [sys.executable, "-m", "examples.video_remote", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    with tempfile.NamedTemporaryFile(prefix="crossway-video-", suffix=".log") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_accepting("127.0.0.1", port, process)
            deadline = time.monotonic() + 60
            # The supervisor's socket accepts before its workers serve: wait for them.
            while workers > 1 and Path(log.name).read_text().count("is serving") < workers:
                assert process.poll() is None, Path(log.name).read_text()
                assert time.monotonic() < deadline, Path(log.name).read_text()
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def serve(served_by: str, run_server_process: Callable[..., Any]) -> Iterator[str]:
    """The demo served as ``served_by`` says (the one command, or asgi-server's arguments)."""
    if served_by in (ONE_COMMAND, TWO_WORKERS):
        with one_command(workers=2 if served_by == TWO_WORKERS else 1) as url:
            yield url
    else:
        with run_server_process(served_by, "--log-level", "warning") as server:
            yield server.url


def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: the committed folder under UPDATE_SCREENSHOTS=1, else tmp_path."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path


def open_player(browser: Any, base_url: str) -> tuple[Any, str]:
    """A player page on ``/``: it picks its own id, registers its procedures; (page, id)."""
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 760, "height": 420}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.problems = record_problems(page)
    page.goto(base_url + "/")
    expect(page.locator("#status")).to_have_text("Ready: waiting for a remote.")
    player_id = page.locator("#player-id").text_content()
    assert player_id and page.url == f"{base_url}/?id={player_id}"
    return page, player_id


def open_remote(browser: Any, base_url: str, player_id: str) -> Any:
    """A phone-sized remote of ``player_id``, showing its player paused."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 520}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.problems = record_problems(page)
    page.goto(f"{base_url}/remote.html?id={player_id}")
    expect(page.locator("#toggle")).to_have_text("Play")
    expect(page.locator("#toggle")).to_be_enabled()
    return page


def video(page: Any, expression: str) -> Any:
    return page.eval_on_selector("#video", f"video => video.{expression}")


def decode_qr(page: Any, tmp_path: Path) -> str:
    """The text of the QR code as the page shows it (a screenshot of the image, read by zbarimg)."""
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        pytest.fail("zbarimg is missing: run 'bash scripts/install-system.sh'", pytrace=False)
    picture = tmp_path / "qr.png"
    page.locator("#qr").screenshot(path=str(picture))
    result = subprocess.run(
        [zbarimg, "--quiet", "--raw", str(picture)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    "served_by",
    [ONE_COMMAND, TWO_WORKERS, CROSSBAR],
    ids=["one-command", "two-workers", "crossbar-config"],
)
def test_remotes_drive_their_own_player_only(
    autoplay_browser: Any, run_server_process: Callable[..., Any], tmp_path: Path, served_by: str
) -> None:
    from playwright.sync_api import expect

    with serve(served_by, run_server_process) as url:
        player, player_id = open_player(autoplay_browser, url)
        other, other_id = open_player(autoplay_browser, url)
        assert other_id != player_id
        first = open_remote(autoplay_browser, url, player_id)
        second = open_remote(autoplay_browser, url, player_id)
        other_remote = open_remote(autoplay_browser, url, other_id)

        first.click("#toggle")
        player.wait_for_function("!document.getElementById('video').paused")
        started = video(player, "currentTime")
        player.wait_for_function(f"document.getElementById('video').currentTime > {started} + 0.3")
        expect(first.locator("#toggle")).to_have_text("Pause")
        expect(second.locator("#toggle")).to_have_text("Pause")

        second.locator("#volume").fill("0.35")
        player.wait_for_function("Math.abs(document.getElementById('video').volume - 0.35) < 1e-6")
        assert video(player, "muted") is False
        expect(first.locator("#volume")).to_have_value("0.35")

        # The other player and its remote saw none of it.
        assert video(other, "paused") is True
        assert video(other, "volume") == 1
        expect(other_remote.locator("#toggle")).to_have_text("Play")

        assert decode_qr(player, tmp_path) == f"{url}/remote.html?id={player_id}"
        shots = screenshot_dir(tmp_path) if served_by == ONE_COMMAND else tmp_path
        player.screenshot(path=str(shots / "player.png"))
        first.screenshot(path=str(shots / "remote.png"))

        first.click("#toggle")
        player.wait_for_function("document.getElementById('video').paused")
        expect(second.locator("#toggle")).to_have_text("Play")
        pages = (player, other, first, second, other_remote)
        assert [problem for page in pages for problem in page.problems] == []


def test_clicking_the_qr_code_opens_the_remote_in_a_new_tab(
    autoplay_browser: Any, run_server_process: Callable[..., Any], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with run_server_process(APP, "--log-level", "warning") as server:
        player, player_id = open_player(autoplay_browser, server.url)
        with player.context.expect_page() as opened:
            player.click("#qr")
        remote = opened.value
        remote.wait_for_load_state()
        assert remote.url == f"{server.url}/remote.html?id={player_id}"
        expect(remote.locator("#toggle")).to_have_text("Play", timeout=TIMEOUT_MS)
        remote.click("#toggle")
        player.wait_for_function("!document.getElementById('video').paused")
        remote.screenshot(path=str(tmp_path / "remote-from-qr.png"))


def test_a_remote_without_a_player_says_so(
    autoplay_browser: Any, run_server_process: Callable[..., Any], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with run_server_process(APP, "--log-level", "warning") as server:
        page = autoplay_browser.new_page()
        page.goto(f"{server.url}/remote.html?id=nosuchplayer")
        expect(page.locator("#status")).to_have_text(
            "Player nosuchplayer is not open.", timeout=TIMEOUT_MS
        )
        expect(page.locator("#toggle")).to_be_disabled()
        page.screenshot(path=str(tmp_path / "remote-without-player.png"))


@pytest.mark.parametrize("served_by", [APP, CROSSBAR], ids=["app", "crossbar-config"])
def test_the_qr_code_endpoint_checks_the_player_id(
    run_server_process: Callable[..., Any], served_by: str
) -> None:
    """``/qr/`` (and ``/qr``, as Crossbar.io serves a wsgi path) answers an SVG for a player id
    and 400 otherwise, served by the app or by config.json's wsgi path; the WSGI callable answers
    the same document in process too."""
    import httpx

    with run_server_process(served_by, "--log-level", "warning") as server:
        good = httpx.get(f"{server.url}/qr/?id=abc123", timeout=30)
        assert good.status_code == 200
        assert good.headers["content-type"] == "image/svg+xml"
        assert good.content.startswith(b"<svg") or good.content.startswith(b"<?xml")
        without_slash = httpx.get(f"{server.url}/qr?id=abc123", timeout=30)
        assert (without_slash.status_code, without_slash.content) == (200, good.content)
        for query in ("", "?id=", "?id=ABC", "?id=a.b", "?id=" + "a" * 33):
            assert httpx.get(f"{server.url}/qr/{query}", timeout=30).status_code == 400
            assert httpx.get(f"{server.url}/qr{query}", timeout=30).status_code == 400
        host = server.url.removeprefix("http://")

    statuses: list[str] = []
    environ = {"HTTP_HOST": host, "QUERY_STRING": "id=abc123", "wsgi.url_scheme": "http"}
    body = b"".join(wsgi_app(environ, lambda status, headers: statuses.append(status)))
    assert statuses == ["200 OK"]
    assert body == good.content


@pytest.mark.parametrize("served_by", [ONE_COMMAND, CROSSBAR], ids=["app", "crossbar-config"])
def test_anonymous_browsers_may_use_the_players_uris_only(
    served_by: str, run_server_process: Callable[..., Any]
) -> None:
    """Both ways of serving the demo give anonymous sessions the same role: the player's URIs,
    nothing else (a raw WAMP JSON session over websockets)."""
    import json

    from websockets.sync.client import connect

    with serve(served_by, run_server_process) as url:
        ws_url = url.replace("http://", "ws://") + "/ws"
        with connect(ws_url, subprotocols=["wamp.2.json"]) as ws:  # type: ignore[list-item]
            ws.send(json.dumps([1, "realm1", {"roles": {"callee": {}, "publisher": {}}}]))
            assert json.loads(ws.recv(timeout=10))[0] == 2  # WELCOME
            ws.send(json.dumps([64, 1, {}, "com.crossway.video.p1.play"]))
            assert json.loads(ws.recv(timeout=10))[0] == 65  # REGISTERED
            ws.send(json.dumps([64, 2, {}, "com.elsewhere.play"]))
            error = json.loads(ws.recv(timeout=10))
            assert error[0] == 8 and error[4] == "wamp.error.not_authorized"
