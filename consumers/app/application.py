"""The Application object: one ASGI 3 app that composes HTTP routes, WAMP handlers, lifecycle
hooks, cron jobs, task queues and processes from Crossway's parts (see the package docstring)."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import logging
import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .background import Background
from .context import Context
from .http import HTTPError, HttpRoutes, Receive, Request, Response, Scope, Send, as_response
from .wamp import AppWamp

if TYPE_CHECKING:
    from consumers.wamp import Router

    from .remote import RemoteComponent

logger = logging.getLogger("consumers.app")

Hook = Callable[..., Any]
#: Set by the supervisor in each worker process (1-based): where handlers are placed.
WORKER_INDEX_VARIABLE = "ASGI_SERVER_WORKER_INDEX"


@dataclass(frozen=True)
class AppOption:
    """An option the app declares: a CLI flag, an environment variable, a default."""

    name: str
    kind: Callable[[str], Any]
    default: Any
    help: str


class Application:
    """``Application("site")``: routes (``app.http``), WAMP handlers (``app.wamp``), hooks
    (``app.on``), cron, queues, options and ``app.run()``; an ASGI 3 app in itself."""

    #: Mounted in a URLRouter (``path("site/", app)``), it serves everything below the prefix.
    _path_routing = True

    def __init__(
        self,
        name: str,
        *,
        realm: str = "realm1",
        ws_path: str = "/ws",
        connect_to: str | None = None,
        task_workers: bool = True,
        plugins: Iterable[str] = (),
        router: Router | None = None,
    ) -> None:
        self.name = name
        #: The folder of the module that created the app: relative paths start here.
        self.root = _caller_directory()
        self.ws_path = ws_path
        self.task_workers = task_workers
        self.http = HttpRoutes(self.root)
        self.placement: dict[int, list[str]] = {}
        #: ``router``: a project's consumers.wamp Router (with ``realm``) to join instead of a
        #: Router of the app's own, so the project's WAMP clients and the app's handlers meet.
        self.wamp = AppWamp(self, realm, router)
        #: With ``connect_to``, the WAMP handlers join a remote router instead of our own.
        self.remote: RemoteComponent | None = None
        if connect_to is not None:
            from .remote import RemoteComponent

            self.remote = RemoteComponent(self, connect_to, realm)
        self.background = Background(self)
        self.hooks: dict[str, list[Hook]] = {}
        self.options: dict[str, AppOption] = {}
        self.settings: dict[str, Any] = {}
        self.services: list[Any] = []
        self.embedded: list[tuple[str, Application]] = []
        #: ``--debug`` (or ``<APP>_DEBUG=1``): a failing handler's 500 carries its traceback.
        self.debug = _environment_flag(self, "DEBUG")
        self._prepared = False
        self._wamp_endpoint = self.wamp.router.as_asgi()
        for plugin in plugins:
            self.plug(plugin)

    # --- composition ----------------------------------------------------------------------------
    def on(self, event: str) -> Callable[[Hook], Hook]:
        """Decorator: run the hook (sync or async, called with a Context) on ``event``:
        "app.ready" (after startup), "app.stopping" (at shutdown) or any ``emit``-ted name."""

        def decorate(hook: Hook) -> Hook:
            self.hooks.setdefault(event, []).append(hook)
            return hook

        return decorate

    async def emit(self, event: str, *args: Any, **kwargs: Any) -> None:
        """Run every hook of ``event`` in turn; sync ones in the thread pool."""
        from asgiref.sync import sync_to_async

        for hook in self.hooks.get(event, ()):
            context = Context(self, event)
            if inspect.iscoroutinefunction(hook):
                await hook(context, *args, **kwargs)
            else:
                await sync_to_async(hook, thread_sensitive=False)(context, *args, **kwargs)

    def cron(self, **schedule: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: run the function on a schedule (``every=timedelta(...)``, a cron
        expression, fields, ``overlap``: the arguments of ``consumers.tasks.cron``)."""
        return self.background.cron(**schedule)

    def queue(self, name: str, *, workers: int = 1, **options: Any) -> Any:
        """A task queue (``consumers.tasks.Queue``) whose workers the app runs."""
        return self.background.queue(name, workers=workers, **options)

    def option(
        self, name: str, kind: Callable[[str], Any] = str, default: Any = None, help: str = ""
    ) -> None:
        """Declare an option: ``--name`` on the command line, ``<APP>_<NAME>`` in the
        environment; its value is ``app.settings[name]``."""
        self.options[name] = AppOption(name, kind, default, help or f"The app's {name!r} option.")
        from .cli import env_prefix

        value = os.environ.get(env_prefix(self) + name.upper())
        self.settings[name] = kind(value) if value is not None else default

    def processes(self, placement: dict[int, list[str]]) -> None:
        """Place handlers on worker processes (1-based): ``{1: ["wamp.register:auth.*"],
        2: ["queue:videos"]}``. Patterns are ``kind:name`` globs; kinds are wamp.register,
        wamp.subscribe, queue and cron. A handler no pattern names runs in every process.
        Call it before declaring handlers; ``app.run()`` starts ``max(placement)`` workers."""
        self.placement = dict(placement)

    def placed(self, kind: str, name: str) -> bool:
        """Whether the handler ``kind:name`` runs in this process."""
        if not self.placement:
            return True
        target = f"{kind}:{name}"
        homes = [
            index
            for index, patterns in self.placement.items()
            if any(fnmatch.fnmatchcase(target, pattern) for pattern in patterns)
        ]
        if not homes:
            return True
        index = os.environ.get(WORKER_INDEX_VARIABLE)
        # Outside a supervised worker (one process) everything runs here.
        return index is None or int(index) in homes

    def service(self, command: list[str], *, restart: str = "on-failure", **options: Any) -> Any:
        """Supervise the external program ``command`` (started after "app.ready"; see
        ``consumers.app.services.Service`` for ``restart``, ``stop_timeout``, ``env``...)."""
        from .services import Service

        options.setdefault("cwd", self.root)
        service = Service(command, restart=restart, **options)
        self.services.append(service)
        return service

    def embed(self, other: Application, prefix: str = "") -> None:
        """Compose ``other`` into this app: its routes (below ``prefix``), WAMP handlers,
        hooks, cron jobs, queues and services join this app's, in this app's realm."""
        self.embedded.append((prefix, other))
        if prefix:
            self.http.mount(prefix, other)
        else:
            self.http.routes.extend(other.http.routes)
            self.http.mounts.extend(other.http.mounts)
        self.http.static.extend((prefix + p, d) for p, d in other.http.static)
        self.wamp.declared.extend(other.wamp.declared)
        for event, hooks in other.hooks.items():
            self.hooks.setdefault(event, []).extend(hooks)
        self.background.queues.extend(other.background.queues)
        self.background.cron_jobs.extend(other.background.cron_jobs)
        self.services.extend(other.services)

    def plug(self, module: str) -> Any:
        """Import ``module`` and call its ``setup(app)``; returns the module."""
        plugin = importlib.import_module(module)
        setup = getattr(plugin, "setup", None)
        if setup is None:
            raise AttributeError(f"plugin {module!r} has no setup(app) function")
        setup(self)
        return plugin

    def render(self, template: str, context: dict[str, Any] | None = None) -> Response:
        """Render ``template`` as an HTML Response (Jinja2 from ./templates, or Django's)."""
        from .templates import render

        directory = os.path.join(self.root, "templates")
        return Response(render(template, context or {}, directory))

    def run(self, argv: list[str] | None = None) -> int:
        """The command line: serve (every asgi-server option and the app's own), or
        ``template nginx|systemd|supervisor|docker``."""
        from .cli import run

        return run(self, argv)

    # --- ASGI -----------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3 entry: http, websocket (WAMP at ``ws_path``) and lifespan."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            path = self._path(scope)
            if path == self.ws_path or path == self.ws_path + "/":
                self.prepare()
                await self._wamp_endpoint(scope, receive, send)
            elif not await self._mounted(path, scope, receive, send):
                await receive()
                await send({"type": "websocket.close", "code": 1000})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    @staticmethod
    def _path(scope: Scope) -> str:
        remaining = scope.get("path_remaining")
        if remaining is not None:
            return "/" + str(remaining)
        path: str = scope["path"]
        root = scope.get("root_path", "")
        return path[len(root) :] if root and path.startswith(root) else path

    async def _mounted(self, path: str, scope: Scope, receive: Receive, send: Send) -> bool:
        for prefix, app in self.http.mounts:
            if path == prefix or path.startswith(prefix + "/"):
                root = scope.get("root_path", "") + prefix
                rest = path[len(prefix) :].lstrip("/")
                await app(dict(scope, path_remaining=rest, root_path=root), receive, send)
                return True
        return False

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = self._path(scope)
        route, params, other_method = self.http.match(scope["method"], path)
        if route is None:
            if not await self._mounted(path, scope, receive, send):
                status = 405 if other_method else 404
                await Response("Method Not Allowed" if other_method else "Not Found", status).send(
                    send
                )
            return
        body = await _read_body(receive)
        request = Request(scope, params, body)
        try:
            result = await route.call(request, **params)
        except HTTPError as exc:  # the handler's answer, or a malformed JSON or form body
            logger.info("%s %s: %s", scope["method"], path, exc)
            await Response(exc.body, exc.status, exc.headers).send(send)
            return
        except Exception:
            logger.exception(
                "%s %s: the handler %s failed", scope["method"], path, route.handler.__name__
            )
            text = traceback.format_exc() if self.debug else "Internal Server Error"
            await Response(text, 500, content_type="text/plain; charset=utf-8").send(send)
            return
        await as_response(result).send(send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    logger.exception("the app %r failed to start", self.name)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def prepare(self) -> None:
        """Hand the handlers placed in this process to the WAMP router (once)."""
        if not self._prepared:
            self._prepared = True
            self.wamp.prepare()

    async def startup(self) -> None:
        """Bind the WAMP router, start task workers and cron, run "app.ready", start services."""
        if self.remote is not None:
            self.remote.start()
        else:
            self.prepare()
            self.wamp.router.bind()
        self.background.start()
        await self.emit("app.ready")
        for service in self._services_here():
            service.start()

    def _services_here(self) -> list[Any]:
        """Services run where ``processes`` places them (``"service:<name>"``), else only in
        the first worker process: one copy per machine, not one per worker."""
        slot = os.environ.get(WORKER_INDEX_VARIABLE)
        here = []
        for service in self.services:
            target = f"service:{service.name}"
            named = any(
                fnmatch.fnmatchcase(target, pattern)
                for patterns in self.placement.values()
                for pattern in patterns
            )
            if self.placed("service", service.name) if named else slot in (None, "1"):
                here.append(service)
        return here

    async def shutdown(self) -> None:
        """Run "app.stopping", stop services, drain task workers."""
        await self.emit("app.stopping")
        for service in self._services_here():
            await service.stop()
        await self.background.stop()
        if self.remote is not None:
            await self.remote.stop()


def _environment_flag(app: Application, name: str) -> bool:
    """Whether ``<APP>_<NAME>`` is set to a true word (1, true, yes, on)."""
    from .cli import _TRUE_WORDS, env_prefix

    return os.environ.get(env_prefix(app) + name, "").lower() in _TRUE_WORDS


def _caller_directory() -> str:
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__", "").startswith("consumers.app"):
        frame = frame.f_back
    filename = frame.f_globals.get("__file__") if frame is not None else None
    return os.path.dirname(os.path.abspath(filename)) if filename else os.getcwd()


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
