"""The HTTP side of an Application: routes with typed path parameters, Request and Response.

Routes are matched by one compiled regular expression each, in declaration order. A parameter
whose text does not fit its type (``/user/abc/`` for ``{id:int}``) simply does not match, so the
client gets 404, as in Django's and Starlette's converters.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import uuid
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async

logger = logging.getLogger("consumers.app")

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

#: Path parameter types: the regex a segment must match and the converter of its text.
CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"-?[0-9]+", int),
    "float": (r"-?[0-9]+(?:\.[0-9]+)?", float),
    "uuid": (r"[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}", uuid.UUID),
    "path": (r".*", str),
}
_PARAMETER = re.compile(r"\{(\w+)(?::(\w+))?\}|:(\w+)")


def compile_path(pattern: str) -> tuple[re.Pattern[str], dict[str, Callable[[str], Any]]]:
    """``/user/{id:int}/`` or Express-style ``/user/:id/`` -> a regex and the converters."""
    regex, converters, position = "^", {}, 0
    for found in _PARAMETER.finditer(pattern):
        regex += re.escape(pattern[position : found.start()])
        name = found.group(1) or found.group(3)
        kind = found.group(2) or "str"
        if kind not in CONVERTERS:
            raise ValueError(
                f"route {pattern!r}: unknown parameter type {kind!r}; use one of"
                f" {', '.join(CONVERTERS)}"
            )
        part, converters[name] = CONVERTERS[kind]
        regex += f"(?P<{name}>{part})"
        position = found.end()
    regex += re.escape(pattern[position:]) + "$"
    return re.compile(regex), converters


class HTTPError(Exception):
    """Raise it in a handler to answer with ``status``: ``raise HTTPError(404)``, or with a body
    of your own (text, or a dict/list as JSON) and headers. Logged at INFO, not as a failure."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        self.status = status
        self.body = HTTPStatus(status).phrase if body is None else body
        self.headers = dict(headers or {})
        super().__init__(f"{status}: {self.body!r}")


class Request:
    """One HTTP request: ``method``, ``path``, ``params`` (typed path parameters), ``query``,
    ``headers``, ``cookies``, and the body as ``body``, ``json`` or ``form`` (read up front)."""

    __slots__ = ("_cookies", "_form", "_headers", "_query", "body", "params", "scope")

    def __init__(self, scope: Scope, params: dict[str, Any], body: bytes) -> None:
        self.scope = scope
        self.params = params
        self.body = body
        self._headers: dict[str, str] | None = None
        self._query: dict[str, str] | None = None
        self._cookies: dict[str, str] | None = None
        self._form: dict[str, str] | None = None

    @property
    def method(self) -> str:
        """The request method, upper case."""
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        """The request path (decoded)."""
        return str(self.scope["path"])

    @property
    def headers(self) -> dict[str, str]:
        """Request headers, names lower case (repeated headers joined with ', ')."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for name, value in self.scope.get("headers", ()):
                key, text = name.decode("latin-1").lower(), value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            self._headers = headers
        return self._headers

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (the last value of a repeated one; ``query_list`` has them all)."""
        if self._query is None:
            self._query = {k: v[-1] for k, v in self.query_list.items()}
        return self._query

    @property
    def query_list(self) -> dict[str, list[str]]:
        """Every value of every query parameter."""
        return parse_qs(self.scope.get("query_string", b"").decode("latin-1"))

    @property
    def cookies(self) -> dict[str, str]:
        """The request's cookies."""
        if self._cookies is None:
            jar: SimpleCookie = SimpleCookie()
            jar.load(self.headers.get("cookie", ""))
            self._cookies = {name: morsel.value for name, morsel in jar.items()}
        return self._cookies

    @property
    def json(self) -> Any:
        """The body parsed as JSON; a body that is not raises HTTPError(400)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise HTTPError(400, {"error": f"the body is not JSON: {exc}"}) from exc

    @property
    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body as a dict (last value wins); a body
        that is not UTF-8 raises HTTPError(400)."""
        if self._form is None:
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HTTPError(400, {"error": f"the form is not UTF-8: {exc}"}) from exc
            fields = parse_qs(text, keep_blank_values=True)
            self._form = {k: v[-1] for k, v in fields.items()}
        return self._form


@dataclass
class Response:
    """A response: ``body`` (bytes, str, a dict/list as JSON, or an (async) iterable of chunks
    to stream), ``status``, ``headers`` and ``cookies`` to set."""

    body: Any = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes | None, str]:
        """The body as bytes (None when streamed) and its default content type."""
        body = self.body
        if isinstance(body, bytes):
            return body, "application/octet-stream"
        if isinstance(body, str):
            return body.encode(), "text/html; charset=utf-8"
        if isinstance(body, dict | list):
            return json.dumps(body).encode(), "application/json"
        return None, "application/octet-stream"

    def head(self, content_type: str) -> list[tuple[bytes, bytes]]:
        """The header list for http.response.start."""
        headers = [(b"content-type", (self.content_type or content_type).encode())]
        headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in self.headers.items()]
        for name, value in self.cookies.items():
            headers.append((b"set-cookie", f"{name}={value}; Path=/".encode("latin-1")))
        return headers

    async def send(self, send: Send) -> None:
        """Send the response through ASGI ``send``."""
        body, content_type = self.encoded()
        headers = self.head(content_type)
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        if body is not None:
            await send({"type": "http.response.body", "body": body})
            return
        async for chunk in _chunks(self.body):
            data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


async def _chunks(body: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterable[Any]:
    if isinstance(body, AsyncIterable):
        async for chunk in body:
            yield chunk
    else:
        for chunk in body:
            yield chunk


def as_response(result: Any) -> Response:
    """A handler's return value as a Response: dict/list -> JSON, str -> HTML, None -> 204."""
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(b"", status=204)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], int):
        return Response(result[0], status=result[1])
    return Response(result)


def _static_app(directory: str, allow_index: bool) -> Any:
    from consumers.web import StaticFiles

    return StaticFiles(directory, allow_index=allow_index)


@dataclass
class Route:
    """One HTTP route: methods, the compiled path and the handler (sync ones run in threads)."""

    methods: frozenset[str]
    pattern: str
    regex: re.Pattern[str]
    converters: dict[str, Callable[[str], Any]]
    handler: Callable[..., Any]
    call: Callable[..., Any]


class HttpRoutes:
    """``app.http``: route decorators (``get``, ``post``, ``put``, ``delete``, ``route``),
    ``serve`` for a static directory, and ``mount`` for any ASGI app under a prefix."""

    def __init__(self, root: str = ".") -> None:
        self.root = root
        self.routes: list[Route] = []
        self.mounts: list[tuple[str, Any]] = []
        self.static: list[tuple[str, str]] = []  # (prefix, directory) for deployment files

    def route(self, pattern: str, methods: Iterable[str] = ("GET",)) -> Callable[[Any], Any]:
        """Decorator: the handler answers ``methods`` on ``pattern``; it is called as
        ``handler(request, **params)``."""
        regex, converters = compile_path(pattern)

        def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
            call = handler
            if not inspect.iscoroutinefunction(handler):
                call = sync_to_async(handler, thread_sensitive=False)
            upper = frozenset(m.upper() for m in methods)
            if "GET" in upper:
                upper |= {"HEAD"}
            self.routes.append(Route(upper, pattern, regex, converters, handler, call))
            return handler

        return decorate

    def get(self, pattern: str) -> Callable[[Any], Any]:
        """Decorator for a GET (and HEAD) route."""
        return self.route(pattern, ("GET",))

    def post(self, pattern: str) -> Callable[[Any], Any]:
        """Decorator for a POST route."""
        return self.route(pattern, ("POST",))

    def put(self, pattern: str) -> Callable[[Any], Any]:
        """Decorator for a PUT route."""
        return self.route(pattern, ("PUT",))

    def delete(self, pattern: str) -> Callable[[Any], Any]:
        """Decorator for a DELETE route."""
        return self.route(pattern, ("DELETE",))

    def mount(self, prefix: str, app: Any) -> None:
        """Serve everything below ``prefix`` with the ASGI ``app`` (root_path set)."""
        self.mounts.append((prefix.rstrip("/"), app))

    def serve(self, prefix: str, directory: str, *, allow_index: bool = False) -> None:
        """Serve the files of ``directory`` below ``prefix`` with consumers.web's StaticFiles
        (nginx serves them directly in the generated deployment file). A relative
        ``directory`` is below the folder of the app's module."""
        directory = os.path.join(self.root, directory)
        self.static.append((prefix.rstrip("/"), os.path.abspath(directory)))
        self.mount(prefix, _static_app(directory, allow_index))

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, Any], bool]:
        """The route for ``method`` and ``path``, its converted params, and whether the path
        matched some route with another method (-> 405)."""
        other_method = False
        for route in self.routes:
            found = route.regex.match(path)
            if found is None:
                continue
            if method not in route.methods:
                other_method = True
                continue
            params = {k: route.converters[k](v) for k, v in found.groupdict().items()}
            return route, params, False
        return None, {}, other_method
