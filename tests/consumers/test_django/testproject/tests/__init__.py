"""Helpers shared by the test project's tests."""

from typing import Any

from consumers.testing import WebsocketCommunicator
from testproject.asgi import application

TIMEOUT = 5  # seconds; every wait is bounded


def cookie_header(session_key: str | None) -> list[tuple[bytes, bytes]]:
    """The Cookie header a browser holding ``session_key`` would send."""
    return [(b"cookie", f"sessionid={session_key}".encode())] if session_key else []


async def open_socket(path: str, session_key: str | None = None) -> WebsocketCommunicator:
    """A connected WebSocket to the test project's application."""
    communicator = WebsocketCommunicator(application, path, headers=cookie_header(session_key))
    connected, code = await communicator.connect(timeout=TIMEOUT)
    assert connected, f"refused with close code {code}"
    return communicator


async def ask(communicator: WebsocketCommunicator, content: Any) -> Any:
    """Send a JSON frame and return the JSON reply."""
    await communicator.send_json_to(content)
    return await communicator.receive_json_from(timeout=TIMEOUT)


def set_cookies(headers: list[tuple[bytes, bytes]] | None) -> list[str]:
    """The Set-Cookie header values among ``headers``."""
    return [value.decode() for name, value in headers or [] if name.lower() == b"set-cookie"]
