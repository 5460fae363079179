"""The redirect path type (Crossbar.io's ``redirect``): every request goes to one URL."""

from __future__ import annotations

from ..base import Receive, Scope, Send
from ._http import refuse_websocket, respond


class Redirect:
    """ASGI app answering every HTTP request with a redirect to ``url`` (302 by default, as
    Crossbar's; 301 or 308 for a permanent move)."""

    def __init__(self, url: str, status: int = 302) -> None:
        if status not in (301, 302, 303, 307, 308):
            raise ValueError(f"a redirect status is 301, 302, 303, 307 or 308, not {status}")
        if any(character in url for character in "\r\n"):
            raise ValueError("a redirect URL cannot contain a line break")
        self.url = url
        self.status = status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request."""
        if scope["type"] == "websocket":
            await refuse_websocket(receive, send)
        elif scope["type"] == "http":
            location = [(b"location", self.url.encode("latin-1"))]
            body = f"Moved to {self.url}\n".encode("latin-1")
            await respond(send, self.status, body, headers=location)
