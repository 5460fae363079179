"""Crossway's ASGI server: HTTP/1.1 (h11 or httptools) and WebSocket for any ASGI app."""

from asgi_server.config import Config

# The one place the distribution's version is written (pyproject.toml reads it from here).
__version__ = "0.2.0"

__all__ = ["Config", "Server", "__version__"]


def __getattr__(name: str) -> object:
    # Lazy, so that importing the config (e.g. from the CLI's --help) stays cheap.
    if name == "Server":
        from asgi_server.server import Server

        return Server
    raise AttributeError(f"module 'asgi_server' has no attribute {name!r}")
