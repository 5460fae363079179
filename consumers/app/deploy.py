"""Deployment files generated from an Application and its Config: nginx (static directories
served by nginx itself, the WebSocket path with the upgrade headers, the rest proxied), a
systemd unit, a supervisord program and a Dockerfile. Each stops the server with SIGTERM and
waits the graceful-shutdown timeout plus a margin before killing it."""

from __future__ import annotations

import getpass
import os
import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from asgi_server.config import Config

if TYPE_CHECKING:
    from .application import Application

#: Seconds beyond --timeout-graceful-shutdown before a process manager kills the server.
STOP_MARGIN = 5


def _program() -> str:
    main = sys.modules.get("__main__")
    return os.path.abspath(getattr(main, "__file__", None) or sys.argv[0])


def _command(config: Config) -> list[str]:
    """The command line that serves the app with ``config``'s listening options."""
    command = [sys.executable, _program()]
    if config.uds:
        command += ["--uds", config.uds]
    else:
        command += ["--host", config.host, "--port", str(config.port)]
    if config.workers > 1:
        command += ["--workers", str(config.workers)]
    command += ["--timeout-graceful-shutdown", f"{config.timeout_graceful_shutdown:g}"]
    return command


def _stop_seconds(config: Config) -> int:
    return int(config.timeout_graceful_shutdown) + STOP_MARGIN


def nginx(app: Application, config: Config) -> str:
    """An nginx ``upstream`` and ``server`` block (for conf.d/ or sites-enabled/)."""
    backend = f"unix:{config.uds}" if config.uds else f"{config.host}:{config.port}"
    name = app.name.replace("-", "_")
    lines = [
        f"# nginx in front of the {app.name!r} application ('template nginx' wrote this)",
        "map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
        f"upstream {name}_app {{ server {backend}; keepalive 32; }}",
        "server {",
        "    listen 80;",
        "    client_max_body_size 10m;",
    ]
    for prefix, directory in app.http.static:
        lines += [
            f"    location {prefix}/ {{",
            f"        alias {directory.rstrip('/')}/;",
            "        autoindex off;",
            "    }",
        ]
    lines += [
        f"    location = {app.ws_path} {{",
        f"        proxy_pass http://{name}_app;",
        "        proxy_http_version 1.1;",
        "        proxy_set_header Upgrade $http_upgrade;",
        "        proxy_set_header Connection $connection_upgrade;",
        "        proxy_set_header Host $host;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "        proxy_read_timeout 1h;",
        "    }",
        "    location / {",
        f"        proxy_pass http://{name}_app;",
        "        proxy_http_version 1.1;",
        '        proxy_set_header Connection "";',
        "        proxy_set_header Host $host;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def systemd(app: Application, config: Config, user: str) -> str:
    """A systemd service unit."""
    return "\n".join(
        [
            "[Unit]",
            f"Description=The {app.name} application (Crossway)",
            "After=network.target",
            "",
            "[Service]",
            "Type=simple",
            f"User={user}",
            f"WorkingDirectory={os.path.dirname(_program())}",
            f"ExecStart={shlex.join(_command(config))}",
            "KillSignal=SIGTERM",
            "KillMode=mixed",
            f"TimeoutStopSec={_stop_seconds(config)}",
            "Restart=on-failure",
            "RestartSec=2",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def supervisor(app: Application, config: Config, user: str) -> str:
    """A supervisord ``[program:...]`` section."""
    return "\n".join(
        [
            f"[program:{app.name}]",
            f"command={shlex.join(_command(config))}",
            f"directory={os.path.dirname(_program())}",
            f"user={user}",
            "autostart=true",
            "autorestart=true",
            "stopsignal=TERM",
            f"stopwaitsecs={_stop_seconds(config)}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            "",
        ]
    )


def docker(app: Application, config: Config) -> str:
    """A Dockerfile for the app's folder."""
    script = os.path.basename(_program())
    port = str(config.port or 8000)
    command = ["python", script, "--host", "0.0.0.0", "--port", port]
    if config.workers > 1:
        command += ["--workers", str(config.workers)]
    quoted = ", ".join(f'"{part}"' for part in command)
    # Several processes share an embedded Redis unless CHANNEL_LAYERS_URL names one: the image
    # needs a redis-server for it (consumers.embedded_redis).
    redis = [
        "RUN apt-get update && apt-get install -y --no-install-recommends redis-server \\",
        "    && rm -rf /var/lib/apt/lists/*",
    ]
    return "\n".join(
        [
            "FROM python:3.12-slim",
            *(redis if config.workers > 1 else []),
            "WORKDIR /app",
            "COPY requirements.txt* ./",
            "RUN [ ! -f requirements.txt ] || pip install --no-cache-dir -r requirements.txt",
            "COPY . .",
            f"EXPOSE {port}",
            "STOPSIGNAL SIGTERM",
            f"CMD [{quoted}]",
            "",
        ]
    )


def render_deployment(kind: str, app: Application, config: Config) -> str:
    """The deployment file ``kind`` (nginx, systemd, supervisor or docker)."""
    user = os.environ.get("USER") or getpass.getuser()
    makers: dict[str, Callable[[], str]] = {
        "nginx": lambda: nginx(app, config),
        "systemd": lambda: systemd(app, config, user),
        "supervisor": lambda: supervisor(app, config, user),
        "docker": lambda: docker(app, config),
    }
    if kind not in makers:
        raise ValueError(f"template {kind!r}: choose one of {', '.join(makers)}")
    return makers[kind]()
