"""``asgi-server module:attr [options]``: the command line, generated from Config's fields.

Each Config field with ``cli`` metadata not False becomes one option: ``bool`` gives
``--x/--no-x``, ``X | None`` takes an ``X``, a ``Literal`` gives choices, a ``tuple`` is
repeatable; metadata ``flag`` overrides the option's name. Defaults are not repeated here:
options left out keep Config's defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Any

from asgi_server.config import Config


def _add_option(parser: argparse.ArgumentParser, field: dataclasses.Field[Any], kind: Any) -> None:
    flag = field.metadata.get("flag", "--" + field.name.replace("_", "-"))
    flags = [flag, *field.metadata.get("aliases", ())]
    help_text = f"{field.metadata['help']} [default: {field.default!r}]"
    options: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS, "help": help_text}
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if kind is bool:
        parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **options)
    elif typing.get_origin(kind) is typing.Literal:
        parser.add_argument(*flags, choices=list(typing.get_args(kind)), **options)
    elif typing.get_origin(kind) is tuple:
        parser.add_argument(*flags, action="append", metavar="VALUE", **options)
    else:
        parser.add_argument(*flags, type=kind, metavar=kind.__name__.upper(), **options)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for every Config field that is a command-line option."""
    parser = argparse.ArgumentParser(
        prog="asgi-server", description="Serve an ASGI application over HTTP/1.1 and WebSocket."
    )
    parser.add_argument("app", help="The ASGI application, as 'module:attribute'.")
    hints = typing.get_type_hints(Config, include_extras=False)
    for field in dataclasses.fields(Config):
        if field.metadata.get("cli", True):
            _add_option(parser, field, hints[field.name])
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> Config:
    """Parse a command line into a Config."""
    namespace = vars(build_parser().parse_args(argv))
    app = namespace.pop("app")
    for name, value in namespace.items():
        if isinstance(value, list):  # repeatable options (tuple fields)
            namespace[name] = tuple(value)
    return Config(app=app, **namespace)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server from the command line; returns the exit code."""
    from asgi_server.logs import configure_logging
    from asgi_server.supervisor import Supervisor, serve_in_this_process

    config = config_from_args(argv)
    configure_logging(config.log_level)
    if config.workers > 1 or config.reload:
        return Supervisor(config).run()
    return serve_in_this_process(config)
