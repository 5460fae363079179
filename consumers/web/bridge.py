"""The HTTP bridge to WAMP: ``Publisher`` (Crossbar's publisher, formerly "pusher"), ``Caller``
and ``Webhook``. Each turns a POST into a WAMP action on a realm of a ``consumers.wamp.Router``
in this process, as an in-process session with the path's role.

- ``Publisher``: body ``{"topic": ..., "args": [...], "kwargs": {...}, "options": {...}}``,
  answer ``{"id": <publication id>}``.
- ``Caller``: body ``{"procedure": ..., "args": [...], "kwargs": {...}}``, answer
  ``{"args": [...], "kwargs": {...}}`` (kwargs when there are some), within ``call_timeout``.
- ``Webhook``: any body; publishes ``{"headers": {...}, "body": "..."}`` as the one argument of
  an event on the configured topic, answers 202 ``{"id": ...}``.

Every answer is JSON. Errors carry ``{"error": <URI>, "message"| "args"/"kwargs"}``: 400 for a
body that is not the JSON object described, 401 for signing, 403 for the client's address, TLS
or the role's permissions (a publish on a topic the role has no permission entry for at all is
404 ``crossway.error.unknown_topic``; one an entry denies is 403), 404 for
``wamp.error.no_such_procedure``, 405 for another method than
POST, 413 for a body over the limit, 504 for a call that timed out, 500 for other errors. Checks
(``BridgeSecurity``): IP allow-list and TLS first, then the body size (Content-Length before
reading), then the signature.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from autobahn.wamp import exception as _exception
from autobahn.wamp import types as _types

from ..base import Receive, Scope, Send
from ..wamp import ComponentSession, Router
from ..wamp.roles import Role
from ..wamp.router import router_for
from ._http import BodyTooLarge, read_body, refuse_websocket, respond_json
from .signing import BridgeSecurity, Refused

#: autobahn's (untyped) classes: what a failed call raises, and a result of several values.
ApplicationError: Any = _exception.ApplicationError
CallResult: Any = _types.CallResult

#: WAMP error URIs whose HTTP status is not 500.
STATUS_OF_ERROR = {
    "wamp.error.not_authorized": 403,
    "wamp.error.authorization_failed": 403,
    "wamp.error.no_such_procedure": 404,
    "wamp.error.no_such_registration": 404,
    "wamp.error.invalid_uri": 400,
    "wamp.error.invalid_argument": 400,
    "wamp.error.timeout": 504,
    "wamp.error.canceled": 502,
    "crossway.error.limit_exceeded": 503,
}


class _Bridge:
    """What the three bridge paths share: checks, body, the in-process session, answers."""

    def __init__(
        self,
        realm: str,
        *,
        role: Role | str = "anonymous",
        security: BridgeSecurity | None = None,
        router: Router | None = None,
    ) -> None:
        self.realm = realm
        self.role = Role.trusted(role) if isinstance(role, str) else role
        self.security = security or BridgeSecurity()
        self._router = router
        self._session: ComponentSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    @property
    def router(self) -> Router:
        """The router of the realm (given, or this process's router of that realm)."""
        return self._router if self._router is not None else router_for(self.realm)

    def session(self) -> ComponentSession:
        """The bridge's in-process session in the realm, joined on first use (and again when
        it has left, or the server runs a new event loop)."""
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or not session.is_attached or self._session_loop is not loop:
            authid = f"http-{type(self).__name__.lower()}"
            session = self.router.join(self.realm, authid=authid, authrole=self.role.name)
            self._session, self._session_loop = session, loop
        return session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request."""
        if scope["type"] == "websocket":
            await refuse_websocket(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, payload = await self._serve(scope, receive)
        except Refused as refused:
            status, payload = refused.status, {"error": refused.error, "message": refused.message}
        except ApplicationError as error:
            status = STATUS_OF_ERROR.get(error.error, 500)
            payload = {"error": error.error, "args": list(error.args), "kwargs": error.kwargs}
        if status == 0:
            return  # the client left before sending its body
        headers = [(b"allow", b"POST")] if status == 405 else None
        await respond_json(send, status, payload, headers)

    async def _serve(self, scope: Scope, receive: Receive) -> tuple[int, Any]:
        if scope["method"] != "POST":
            raise Refused(405, "crossway.error.method_not_allowed", "use POST")
        self.security.check_client(scope)
        limit = self.security.post_body_limit
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise Refused(413, "crossway.error.body_too_large", f"the limit is {limit} bytes")
        try:
            body = await read_body(receive, limit)
        except BodyTooLarge:
            raise Refused(
                413, "crossway.error.body_too_large", f"the limit is {limit} bytes"
            ) from None
        if body is None:
            return 0, None
        self.security.check_signature(scope, body)
        return await self.handle(scope, body)

    async def handle(self, scope: Scope, body: bytes) -> tuple[int, Any]:
        """Turn a checked request body into (status, JSON payload)."""
        raise NotImplementedError

    def permit(self, action: str, uri: str) -> None:
        """Refuse what the path's role may not do: 403, or 404 for a topic the role has no
        permission entry for at all (an unknown topic pattern to this path)."""
        if self.role.allows(action, uri):
            return
        if action == "publish" and self.role.rule_for(uri) is None:
            raise Refused(
                404,
                "crossway.error.unknown_topic",
                f"role {self.role.name!r} has no permission for topic {uri!r}",
            )
        raise Refused(
            403, "wamp.error.not_authorized", f"role {self.role.name!r} may not {action} {uri!r}"
        )


def parse_request(body: bytes, uri_field: str) -> tuple[str, list[Any], dict[str, Any], Any]:
    """A JSON object with a string ``uri_field``, list ``args`` and object ``kwargs``; 400 else."""
    try:
        request = json.loads(body)
    except UnicodeDecodeError:
        raise Refused(400, "crossway.error.invalid_json", "the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        message = f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise Refused(400, "crossway.error.invalid_json", message) from None
    if not isinstance(request, dict):
        raise Refused(400, "crossway.error.invalid_request", "the body must be a JSON object")
    uri = request.get(uri_field)
    args = request.get("args") or []
    kwargs = request.get("kwargs") or {}
    options = request.get("options") or {}
    problems = [
        f"'{uri_field}' must be a string" * (not isinstance(uri, str) or not uri),
        "'args' must be a list" * (not isinstance(args, list)),
        "'kwargs' must be an object" * (not isinstance(kwargs, dict)),
        "'options' must be an object" * (not isinstance(options, dict)),
    ]
    problems = [problem for problem in problems if problem]
    if problems:
        raise Refused(400, "crossway.error.invalid_request", "; ".join(problems))
    return str(uri), args, kwargs, options


#: PUBLISH options an HTTP client may set (the rest belong to the router or to WAMP clients).
PUBLISH_OPTIONS = frozenset(
    {"exclude", "exclude_authid", "exclude_authrole", "eligible", "eligible_authid"}
    | {"eligible_authrole", "retain"}
)


class Publisher(_Bridge):
    """POST ``{"topic", "args", "kwargs", "options"}`` -> publish; answers ``{"id": ...}``."""

    async def handle(self, scope: Scope, body: bytes) -> tuple[int, Any]:
        """Publish the event."""
        topic, args, kwargs, options = parse_request(body, "topic")
        unknown = sorted(set(options) - PUBLISH_OPTIONS)
        if unknown:
            raise Refused(
                400,
                "crossway.error.invalid_request",
                f"unknown publish options {unknown}; use {sorted(PUBLISH_OPTIONS)}",
            )
        self.permit("publish", topic)
        publication = self.session().publish(topic, *args, options=options, **kwargs)
        return 200, {"id": publication}


class Caller(_Bridge):
    """POST ``{"procedure", "args", "kwargs"}`` -> call; answers ``{"args", "kwargs"}``."""

    def __init__(self, realm: str, *, call_timeout: float = 30.0, **options: Any) -> None:
        super().__init__(realm, **options)
        #: Seconds; the router cancels the call (the callee gets INTERRUPT) and we answer 504.
        self.call_timeout = call_timeout

    async def handle(self, scope: Scope, body: bytes) -> tuple[int, Any]:
        """Call the procedure and wait for its result."""
        procedure, args, kwargs, _ = parse_request(body, "procedure")
        self.permit("call", procedure)
        call = self.session().call(procedure, *args, timeout=self.call_timeout, **kwargs)
        try:
            # The router enforces the timeout; this only guards against a router that does not.
            result = await asyncio.wait_for(call, self.call_timeout + 5)
        except TimeoutError:
            raise ApplicationError("wamp.error.timeout", "the call timed out") from None
        if isinstance(result, CallResult):
            answer: dict[str, Any] = {"args": list(result.results)}
            if result.kwresults:
                answer["kwargs"] = result.kwresults
            return 200, answer
        return 200, {"args": [] if result is None else [result]}


class Webhook(_Bridge):
    """Any POST -> an event ``{"headers", "body"}`` on ``topic``; answers 202 ``{"id": ...}``."""

    def __init__(self, realm: str, topic: str, **options: Any) -> None:
        super().__init__(realm, **options)
        self.topic = topic

    async def handle(self, scope: Scope, body: bytes) -> tuple[int, Any]:
        """Publish the request as an event."""
        self.permit("publish", self.topic)
        headers: dict[str, list[str]] = {}
        for name, value in scope.get("headers", ()):
            headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        event = {"headers": headers, "body": body.decode("utf-8", "replace")}
        return 202, {"id": self.session().publish(self.topic, event)}
