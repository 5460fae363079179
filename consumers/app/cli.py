"""``app.run()``: the command line of an Application.

Every asgi-server option (generated from ``asgi_server.config.Config``, as ``asgi-server``'s own
CLI is) plus the options the app declares with ``app.option(...)``. Each also reads an
environment variable, ``<APP>_<OPTION>`` (``SITE_PORT=9000``, ``SITE_ACCESS_LOG=false``); the
command line wins over the environment. ``template nginx|systemd|supervisor|docker [options]``
prints a deployment file generated from the same options instead of serving.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING

from asgi_server.cli import (
    StartupError,
    add_config_options,
    config_from_namespace,
    config_options,
    option_flag,
    prepare,
    version_line,
)
from asgi_server.config import Config

from . import loader

if TYPE_CHECKING:
    from .application import Application

_APP_DEST = "app_option__"
#: What the server processes import: finds the app by the file of the running program.
LOADER = "consumers.app.loader:load"
_TRUE_WORDS = ("1", "true", "yes", "on")


def env_prefix(app: Application) -> str:
    """``site`` -> ``SITE_``: the prefix of the app's environment variables."""
    return re.sub(r"[^A-Z0-9]", "_", app.name.upper()) + "_"


def build_parser(app: Application) -> argparse.ArgumentParser:
    """The parser: Config's options, then the app's own; each help names its variable."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else app.name
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"Serve the {app.name!r} application (or: {prog} template "
        "nginx|systemd|supervisor|docker [options], to print a deployment file).",
    )
    parser.add_argument("--version", action="version", version=version_line())
    add_config_options(parser)
    group = parser.add_argument_group(f"options of {app.name!r}")
    group.add_argument(
        "--debug",
        dest=_APP_DEST + "debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="Development: log at debug level, and answer a handler's failure (a 500) with its "
        "traceback instead of a plain 'Internal Server Error'. Never in production.",
    )
    for option in app.options.values():
        kind = option.kind
        group.add_argument(
            "--" + option.name.replace("_", "-"),
            dest=_APP_DEST + option.name,
            type=kind,
            default=argparse.SUPPRESS,
            metavar=getattr(kind, "__name__", "VALUE").upper(),
            help=f"{option.help} [default: {option.default!r}]",
        )
    prefix = env_prefix(app)
    for action in parser._actions:  # argparse keeps no public list of its actions
        name = action.dest.removeprefix(_APP_DEST)
        if action.option_strings and action.dest not in ("help", "version") and action.help:
            action.help += f" [env: {prefix}{name.upper()}]"
    return parser


def environment_arguments(app: Application, environ: dict[str, str]) -> list[str]:
    """The ``<APP>_<OPTION>`` variables as command-line arguments (put before the real ones,
    which therefore win)."""
    prefix, arguments = env_prefix(app), []
    for field, kind in config_options():
        value = environ.get(prefix + field.name.upper())
        if value is None:
            continue
        flag = option_flag(field)
        if kind is bool and "words" not in field.metadata:
            on = value.lower() in _TRUE_WORDS
            arguments.append(flag if on else "--no-" + flag[2:])
        elif typing.get_origin(kind) is tuple:
            for item in filter(None, value.split(",")):
                arguments += [flag, item.strip()]
        else:
            arguments += [flag, value]
    for option in app.options.values():
        value = environ.get(prefix + option.name.upper())
        if value is not None:
            arguments += ["--" + option.name.replace("_", "-"), value]
    if environ.get(prefix + "DEBUG", "").lower() in _TRUE_WORDS:
        arguments.append("--debug")
    return arguments


def parse(app: Application, argv: Sequence[str]) -> tuple[Config, list[str]]:
    """A Config for ``argv`` (environment first), and the INFO notes its options asked for;
    sets ``app.settings`` from the app's options (and ``app.debug``) and exports them, so worker
    processes see the same values."""
    arguments = environment_arguments(app, dict(os.environ)) + list(argv)
    namespace = vars(build_parser(app).parse_args(arguments))
    prefix = env_prefix(app)
    if namespace.pop(_APP_DEST + "debug", False):
        app.debug = True
        os.environ[prefix + "DEBUG"] = "1"
        namespace["log_level"] = "debug"
    for name in [key for key in namespace if key.startswith(_APP_DEST)]:
        option = name.removeprefix(_APP_DEST)
        app.settings[option] = namespace.pop(name)
        os.environ[prefix + option.upper()] = str(app.settings[option])
    config, notes = config_from_namespace(namespace, app=LOADER, factory=True)
    if app.placement and config.workers < max(app.placement):
        config = config.with_changes(workers=max(app.placement))
    return config, notes


def _point_loader_at(app: Application) -> None:
    main = sys.modules.get("__main__")
    for name, value in vars(main).items() if main is not None else ():
        if value is app:
            os.environ[loader.ATTRIBUTE_VARIABLE] = name
            break
    filename = getattr(main, "__file__", None)
    if filename:
        os.environ[loader.FILE_VARIABLE] = os.path.abspath(filename)
    # `python -m pkg.mod` gives __main__ a spec with the module's import name.
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name != "__main__":
        os.environ[loader.MODULE_VARIABLE] = spec.name


def run(app: Application, argv: Sequence[str] | None = None) -> int:
    """Serve ``app`` (or print a deployment file); returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["template"]:
        from .deploy import render_deployment

        kind = arguments[1] if len(arguments) > 1 else ""
        try:
            text = render_deployment(kind, app, parse(app, arguments[2:])[0])
        except ValueError as exc:
            print(f"{app.name}: error: {exc}", file=sys.stderr)
            return 2
        print(text, end="")
        return 0
    config, notes = parse(app, arguments)
    _point_loader_at(app)
    return serve(app, config, notes)


def serve(app: Application, config: Config, notes: Sequence[str] = ()) -> int:
    """Run the server as ``asgi-server`` would: one process, or the supervisor with its
    companions (the embedded Redis for several processes: asgi_server.cli decides)."""
    from asgi_server.cli import serve as serve_config

    try:
        config = prepare(config)
    except StartupError as exc:
        print(f"{app.name}: error: {exc}", file=sys.stderr)
        return 2
    return serve_config(config, notes)
