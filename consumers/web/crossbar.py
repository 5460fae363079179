"""Run a Crossbar.io node configuration (version 2): ``asgi-server --crossbar-config
.crossbar/config.json`` (or ``.yaml`` with PyYAML installed).

Read: router workers with their realms, roles and permissions and ``options.pythonpath``; their
``web`` and ``websocket`` transports with the endpoint (``tcp`` with ``interface``/``port`` and
optional ``tls`` key/certificate; ``unix`` with ``path``) and the path tree (see
``crossbar_paths``). Several identical router workers become ``--workers N``. What Crossway
cannot run (container and guest workers, router components, MQTT/rawsocket/universal transports,
router-to-router links, WAMP authentication other than anonymous) is refused at startup with one
line per item; nothing is skipped silently. Relative paths are resolved against the config file's
folder, as Crossbar.io resolves them against its node directory.

The CLI calls ``server_settings(path)`` for the listening options and serves
``consumers.web.crossbar:application``, which each worker process builds from the file named in
``CROSSWAY_CROSSBAR_CONFIG``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base import ASGIApp, Receive, Scope, Send
from .crossbar_paths import BUILDERS, UNSUPPORTED_PATHS, Context, Unsupported, pythonpath

logger = logging.getLogger("consumers.web")

ENVIRONMENT_VARIABLE = "CROSSWAY_CROSSBAR_CONFIG"
UNSUPPORTED_WORKERS = {
    "container": "run its components as separate processes (autobahn's ApplicationRunner or "
    "Component) connecting to the websocket path, or as Router.register handlers",
    "guest": "start the program yourself (systemd, a process manager)",
    "proxy": "run several asgi-server workers behind one port (--workers) instead",
    "xbrmm": "nothing: XBR market makers are not part of Crossway",
    "marketmaker": "nothing: XBR market makers are not part of Crossway",
}
UNSUPPORTED_TRANSPORTS = {
    "mqtt": "MQTT is not supported; bridge MQTT clients with a separate broker",
    "rawsocket": "WAMP over RawSocket is not supported; connect over WebSocket",
    "universal": "universal transports are not supported; use a web transport with a ws path",
    "flashpolicy": "Flash policy transports are obsolete",
}


class CrossbarConfigError(ValueError):
    """A config file Crossway cannot run; the message has one line per problem."""


@dataclass
class Endpoint:
    """Where one transport listens."""

    host: str | None = None
    port: int | None = None
    unix: str | None = None
    tls_key: str | None = None
    tls_certificate: str | None = None

    def twisted(self) -> str:
        """The Twisted endpoint string, for configs with several transports."""
        if self.unix:
            return f"unix:{self.unix}"
        interface = f":interface={self.host}" if self.host else ""
        if self.tls_key:
            keys = f"privateKey={self.tls_key}:certKey={self.tls_certificate}"
            return f"ssl:{self.port}{interface}:{keys}"
        return f"tcp:{self.port}{interface}"


@dataclass
class Node:
    """A checked config: its transports (endpoint and app), the number of workers, warnings."""

    transports: list[tuple[Endpoint, ASGIApp]] = field(default_factory=list)
    workers: int = 1
    warnings: list[str] = field(default_factory=list)


def load_file(path: Path) -> dict[str, Any]:
    """The config as a dict; a syntax error names its line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CrossbarConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    if path.suffix in (".yaml", ".yml"):
        return _load_yaml(path, text)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        before = text[: exc.pos].rstrip()
        hint = "; a trailing comma before it?" if before.endswith(",") else ""
        raise CrossbarConfigError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg} "
            f"(line {exc.lineno}, column {exc.colno}{hint})"
        ) from None
    if not isinstance(config, dict):
        raise CrossbarConfigError(f"{path}: the config must be a JSON object")
    return config


def _load_yaml(path: Path, text: str) -> dict[str, Any]:
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise CrossbarConfigError(
            f"{path}: reading YAML configs needs PyYAML (pip install pyyaml), or use config.json"
        ) from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CrossbarConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise CrossbarConfigError(f"{path}: the config must be a mapping")
    return config


def build(path: str | os.PathLike[str]) -> Node:
    """Check and build the node of a config file; raises ``CrossbarConfigError`` listing every
    problem at once."""
    config_path = Path(path).resolve()
    config = load_file(config_path)
    errors: list[str] = []
    version = config.get("version", 1)
    if version != 2:
        errors.append(f"version {version!r}: only version 2 configs are read (crossbar upgrade)")
    routers = _router_workers(config.get("workers", []), errors)
    node = Node(workers=max(len(routers), 1))
    if routers and any(
        worker.get("transports") != routers[0].get("transports") for worker in routers
    ):
        errors.append(
            "workers: several router workers with different transports; Crossway runs one "
            "kind of worker, several times (--workers): give them identical transports"
        )
    if not routers:
        errors.append("workers: no router worker; a config needs one to serve anything")
    if not routers:
        raise CrossbarConfigError("\n".join(f"{config_path}: {error}" for error in errors))
    worker = routers[0]
    where = "workers[0]"
    pythonpath(worker.get("options", {}), config_path.parent)
    context = _router_context(worker, where, config_path.parent, errors)
    for index, transport in enumerate(worker.get("transports", [])):
        built = _transport(transport, f"{where}.transports[{index}]", context, errors)
        if built is not None:
            node.transports.append(built)
    if not worker.get("transports"):
        errors.append(f"{where}: a router worker needs a transport to listen on")
    if errors:
        raise CrossbarConfigError("\n".join(f"{config_path}: {error}" for error in errors))
    node.warnings = context.warnings
    return node


def _router_context(
    worker: Mapping[str, Any], where: str, directory: Path, errors: list[str]
) -> Context:
    """The realms and roles of a router worker, and the Router that serves them."""
    from ..wamp import Router

    realms = worker.get("realms", [])
    context = Context(directory, None)
    for index, realm in enumerate(realms):
        _check_realm(realm, f"{where}.realms[{index}]", context, errors)
    if not realms:
        errors.append(f"{where}: a router worker needs at least one realm")
    else:
        context.router = Router(realms=[_realm(realm) for realm in realms])
    return context


def _realm(realm: Mapping[str, Any]) -> Any:
    """A realm of the config, its roles applying to WebSocket sessions as in Crossbar.io (a
    realm that declares no roles stays open). Its entries were checked by _check_realm."""
    from ..wamp import Realm
    from ..wamp.roles import Role as SessionRole

    entries = realm.get("roles")
    roles = [SessionRole.from_config(entry) for entry in entries] if entries else None
    return Realm(str(realm.get("name")), roles=roles)


def _router_workers(workers: Any, errors: list[str]) -> list[Mapping[str, Any]]:
    routers = []
    for index, worker in enumerate(workers):
        kind = worker.get("type")
        if kind == "router":
            for component in worker.get("components", []):
                errors.append(
                    f"workers[{index}].components: router components ({component.get('classname')}"
                    f") are not run; {UNSUPPORTED_WORKERS['container']}"
                )
            routers.append(worker)
        elif kind in UNSUPPORTED_WORKERS:
            errors.append(
                f"workers[{index}]: {kind} workers cannot run in Crossway; "
                f"{UNSUPPORTED_WORKERS[kind]}"
            )
        else:
            errors.append(f"workers[{index}]: unknown worker type {kind!r}")
    return routers


def _check_realm(realm: Mapping[str, Any], where: str, context: Context, errors: list[str]) -> None:
    from ..wamp.roles import Role

    name = realm.get("name")
    if not name:
        errors.append(f"{where}: a realm needs a 'name'")
        return
    for link in ("rlinks", "connections"):
        if realm.get(link):
            errors.append(
                f"{where}.{link}: router-to-router links are not supported; run one router "
                "(several workers share it over the channel layer once issue 11 lands)"
            )
    if realm.get("store"):
        errors.append(f"{where}.store: event history stores are not supported (retain is)")
    roles = context.roles.setdefault(str(name), {})
    for index, entry in enumerate(realm.get("roles", [])):
        try:
            if "authorizer" in entry:
                raise ValueError(
                    f"role {entry.get('name')!r}: dynamic authorizers are not supported; "
                    "list static permissions"
                )
            role = Role.from_config(entry)
        except (KeyError, ValueError) as exc:
            errors.append(f"{where}.roles[{index}]: {exc}")
            continue
        roles[role.name] = role


def _endpoint(entry: Mapping[str, Any], where: str, directory: Path) -> Endpoint:
    kind = entry.get("type")
    if kind == "unix":
        return Endpoint(unix=str((directory / str(entry["path"])).resolve()))
    if kind != "tcp":
        raise Unsupported(f"{where}: endpoint type {kind!r} is not supported (tcp or unix)")
    if "port" not in entry:
        raise ValueError(f"{where}: a tcp endpoint needs a 'port'")
    host = entry.get("interface") or ("::" if entry.get("version") == 6 else "0.0.0.0")
    endpoint = Endpoint(host=str(host), port=int(entry["port"]))
    tls = entry.get("tls")
    if tls:
        if "key" not in tls or "certificate" not in tls:
            raise ValueError(f"{where}.tls: needs 'key' and 'certificate' (PEM files)")
        endpoint.tls_key = str((directory / str(tls["key"])).resolve())
        endpoint.tls_certificate = str((directory / str(tls["certificate"])).resolve())
    return endpoint


def _transport(
    transport: Mapping[str, Any], where: str, context: Context, errors: list[str]
) -> tuple[Endpoint, ASGIApp] | None:
    kind = transport.get("type")
    if kind in UNSUPPORTED_TRANSPORTS:
        errors.append(f"{where}: {UNSUPPORTED_TRANSPORTS[kind]}")
        return None
    if kind not in ("web", "websocket"):
        errors.append(f"{where}: unknown transport type {kind!r} (web or websocket)")
        return None
    try:
        endpoint = _endpoint(
            transport.get("endpoint") or {}, f"{where}.endpoint", context.directory
        )
        if kind == "websocket":
            paths: Mapping[str, Any] = {"/": dict(transport, type="websocket")}
        else:
            paths = transport.get("paths") or {}
    except (Unsupported, ValueError, KeyError) as exc:
        errors.append(str(exc))
        return None
    return endpoint, _path_tree(paths, where, context, errors)


def _path_tree(
    paths: Mapping[str, Any], where: str, context: Context, errors: list[str]
) -> ASGIApp:
    from ..routing import ProtocolTypeRouter, URLRouter, path, re_path

    http_routes: list[Any] = []
    websocket_routes: list[Any] = []
    root_http: list[Any] = []
    for name, entry in paths.items():
        kind = entry.get("type")
        here = f"{where}.paths[{name!r}]"
        if kind in UNSUPPORTED_PATHS:
            errors.append(f"{here}: {kind} paths are not supported; {UNSUPPORTED_PATHS[kind]}")
            continue
        if kind not in BUILDERS:
            errors.append(f"{here}: unknown path type {kind!r}")
            continue
        try:
            app = BUILDERS[kind](entry, context)
        except (Unsupported, ValueError, TypeError) as exc:
            errors.append(f"{here}: {exc}")
            continue
        segment = name.strip("/")
        if kind == "websocket":
            websocket_routes.append(path(segment, app))
        elif not segment and getattr(app, "_path_routing", False):
            root_http.append(path("", app))
        elif getattr(app, "_path_routing", False):
            # As a Twisted child resource in Crossbar.io: ``/app`` itself reaches the path too
            # (a wsgi app gets SCRIPT_NAME "/app" and PATH_INFO "", a static directory
            # redirects to ``/app/``), not only what lies below ``/app/``.
            http_routes.append(path(f"{segment}/", app))
            http_routes.append(re_path(f"^{re.escape(segment)}\\Z", app))
        else:
            http_routes.append(path(segment, app))
    return ProtocolTypeRouter(
        {"http": URLRouter(http_routes + root_http), "websocket": URLRouter(websocket_routes)}
    )


def server_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The asgi-server Config changes a config file asks for (listening address, TLS,
    workers), after checking the whole file. Sets ``CROSSWAY_CROSSBAR_CONFIG`` for the workers."""
    node = build(path)
    for warning in node.warnings:
        logger.warning("%s", warning)
    os.environ[ENVIRONMENT_VARIABLE] = str(Path(path).resolve())
    settings: dict[str, Any] = {"app": f"{__name__}:application", "workers": node.workers}
    endpoints = [endpoint for endpoint, _ in node.transports]
    if len(endpoints) > 1:
        if node.workers > 1:
            raise CrossbarConfigError(
                f"{path}: several transports and several workers together are not supported"
            )
        settings["endpoints"] = tuple(endpoint.twisted() for endpoint in endpoints)
        return settings
    (endpoint,) = endpoints
    if endpoint.unix:
        settings["uds"] = endpoint.unix
    else:
        settings["host"], settings["port"] = endpoint.host, endpoint.port
    if endpoint.tls_key:
        settings["ssl_keyfile"] = endpoint.tls_key
        settings["ssl_certfile"] = endpoint.tls_certificate
    return settings


class ByPort:
    """Several transports in one process: each connection goes to the tree of its port."""

    def __init__(self, transports: list[tuple[Endpoint, ASGIApp]]) -> None:
        self.by_port = {endpoint.port: app for endpoint, app in transports}
        self.first = transports[0][1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch by the server port of the connection."""
        server = scope.get("server") or (None, None)
        await self.by_port.get(server[1], self.first)(scope, receive, send)


def application_from(path: str | os.PathLike[str]) -> ASGIApp:
    """The ASGI application of a config file (its only transport, or all of them by port)."""
    node = build(path)
    if len(node.transports) == 1:
        return node.transports[0][1]
    return ByPort(node.transports)


_application: ASGIApp | None = None


def __getattr__(name: str) -> Any:
    """``application``: built on first access from ``CROSSWAY_CROSSBAR_CONFIG``."""
    global _application
    if name != "application":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _application is None:
        path = os.environ.get(ENVIRONMENT_VARIABLE)
        if not path:
            raise AttributeError(
                f"{__name__}.application needs {ENVIRONMENT_VARIABLE}; start it with "
                "asgi-server --crossbar-config .crossbar/config.json"
            )
        _application = application_from(path)
    return _application
