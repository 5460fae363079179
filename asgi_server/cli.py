"""``asgi-server module:attr [options]``: the command line, generated from Config's fields.

Each Config field with ``cli`` metadata not False becomes one option: ``bool`` gives
``--x/--no-x`` (plus the values in its ``words`` metadata, e.g. ``--x false``), ``X | None``
takes an ``X``, a ``Literal`` gives choices (any case), a ``tuple`` is repeatable; metadata
``flag`` overrides the option's name and ``aliases`` adds more (Daphne's ``-b``/``-p``/``-u``).
Defaults are not repeated here: options left out keep Config's defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import logging
import platform
import sys
import types
import typing
from collections.abc import Sequence
from typing import Any

from asgi_server import __version__
from asgi_server.config import Config

if typing.TYPE_CHECKING:
    from asgi_server.supervisor import Companion

logger = logging.getLogger("asgi_server.cli")

# Where the words actions leave the lines main() logs once logging is set up.
_NOTES = "_crossway_notes"


class _BoolWithWords(argparse.Action):
    """``--x`` (on), or ``--x WORD`` with WORD mapped by the field's ``words``; ``--no-x`` is a
    separate ``store_false`` option."""

    def __init__(
        self, option_strings: list[str], dest: str, words: dict[str, bool], note: str, **kwargs: Any
    ) -> None:
        super().__init__(option_strings, dest, nargs="?", metavar="WORD", **kwargs)
        self.words, self.note = words, note

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if values is None:
            setattr(namespace, self.dest, True)
            return
        word = values.lower()
        if word not in self.words:
            parser.error(
                f"argument {option_string}: invalid value {values!r} (choose from"
                f" {', '.join(self.words)}; give the app before the options if it was meant)"
            )
        setattr(namespace, self.dest, self.words[word])
        if self.note and self.words[word]:
            notes = getattr(namespace, _NOTES, [])
            setattr(namespace, _NOTES, [*notes, self.note.format(value=word)])


class _Numbered(argparse.Action):
    """``-v N``: sets the option to the N-th of its ``numbered`` values (Daphne's verbosity)."""

    def __init__(
        self, option_strings: list[str], dest: str, values: tuple[Any, ...], **kwargs: Any
    ) -> None:
        choices = range(len(values))
        super().__init__(option_strings, dest, type=int, choices=choices, metavar="N", **kwargs)
        self.values = values

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, self.values[values])


def option_flag(field: dataclasses.Field[Any]) -> str:
    """The command-line flag of a Config field (``--reload-dir`` for ``reload_dirs``)."""
    flag: str = field.metadata.get("flag", "--" + field.name.replace("_", "-"))
    return flag


def config_options() -> list[tuple[dataclasses.Field[Any], Any]]:
    """Every Config field that is a command-line option, with its type."""
    hints = typing.get_type_hints(Config, include_extras=False)
    return [
        (field, hints[field.name])
        for field in dataclasses.fields(Config)
        if field.metadata.get("cli", True)
    ]


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Add an option for every Config field to ``parser`` (each defaults to "not given", so
    that :func:`config_from_namespace` leaves Config's default in place)."""
    for field, kind in config_options():
        _add_option(parser, field, kind)


def config_from_namespace(namespace: dict[str, Any], **fixed: Any) -> tuple[Config, list[str]]:
    """A Config from a parser's namespace (``vars(parser.parse_args())``) of
    :func:`add_config_options` options, plus the ``fixed`` fields; and the INFO notes the options
    asked for. Keys that are not Config fields must be popped from ``namespace`` first."""
    values = dict(namespace)
    notes: list[str] = values.pop(_NOTES, [])
    for name, value in values.items():
        if isinstance(value, list):  # repeatable options (tuple fields)
            values[name] = tuple(value)
    return Config(**fixed, **values), notes


def _add_option(parser: argparse.ArgumentParser, field: dataclasses.Field[Any], kind: Any) -> None:
    flag = option_flag(field)
    flags = [flag, *field.metadata.get("aliases", ())]
    help_text = f"{field.metadata['help']} [default: {field.default!r}]"
    options: dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS, "help": help_text}
    if "numbered" in field.metadata:
        numbered_flags, values = field.metadata["numbered"]
        meaning = ", ".join(f"{n} is {value}" for n, value in enumerate(values))
        numbered_help = f"The same, by number, as Daphne's: {meaning}."
        parser.add_argument(
            *numbered_flags,
            action=_Numbered,
            values=values,
            dest=field.name,
            default=argparse.SUPPRESS,
            help=numbered_help,
        )
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if kind is bool and "words" in field.metadata:
        words, note = field.metadata["words"], field.metadata.get("word_note", "")
        options["help"] += f" WORD: {', '.join(words)} (any case)."
        parser.add_argument(*flags, action=_BoolWithWords, words=words, note=note, **options)
        parser.add_argument(
            "--no-" + flag[2:],
            action="store_false",
            dest=field.name,
            default=argparse.SUPPRESS,
            help=f"Turn {flag} off.",
        )
    elif kind is bool:
        parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **options)
    elif typing.get_origin(kind) is typing.Literal:
        # Any case, as uvicorn takes them (`--log-level DEBUG`); the choices are lower case.
        parser.add_argument(*flags, choices=list(typing.get_args(kind)), type=str.lower, **options)
    elif typing.get_origin(kind) is tuple:
        parser.add_argument(*flags, action="append", metavar="VALUE", **options)
    else:
        parser.add_argument(*flags, type=kind, metavar=kind.__name__.upper(), **options)


def version_line() -> str:
    """What ``asgi-server --version`` prints."""
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"asgi-server (crossway) {__version__} on {python}"


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for every Config field that is a command-line option."""
    parser = argparse.ArgumentParser(
        prog="asgi-server",
        description="Serve an ASGI application over HTTP/1.1, HTTP/2 and WebSocket.",
    )
    parser.add_argument(
        "app", nargs="?", default="", help="The ASGI application, as 'module:attribute'."
    )
    parser.add_argument("--version", action="version", version=version_line())
    add_config_options(parser)
    return parser


def parse_command_line(argv: Sequence[str] | None = None) -> tuple[Config, list[str]]:
    """Parse a command line into a Config, and the INFO notes its options asked for."""
    parser = build_parser()
    namespace = vars(parser.parse_args(argv))
    app = namespace.pop("app")
    if not app and not namespace.get("crossbar_config"):
        parser.error("the following arguments are required: app")
    return config_from_namespace(namespace, app=app)


def config_from_args(argv: Sequence[str] | None = None) -> Config:
    """Parse a command line into a Config."""
    return parse_command_line(argv)[0]


class StartupError(Exception):
    """An option cannot work in this process; the message says why (exit code 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server from the command line; returns the exit code."""
    config, notes = parse_command_line(argv)
    try:
        config = prepare(config, argv)
    except StartupError as exc:
        print(f"asgi-server: error: {exc}", file=sys.stderr)
        return 2
    return serve(config, notes)


def prepare(config: Config, argv: Sequence[str] | None = None) -> Config:
    """Ready this process for ``config``: load ``--env-file``, set up logging, apply
    ``--crossbar-config`` (``argv`` says which options the command line gave itself) and check
    that ``--h2c`` can work. Returns the Config to serve; raises StartupError."""
    from asgi_server.env_file import EnvFileError, load_env_file
    from asgi_server.logs import LogConfigError, configure_logging

    try:
        if config.env_file is not None:
            # Before the app is imported, and inherited by every worker process.
            load_env_file(config.env_file)
        configure_logging(config.log_level, config.log_config)
        if config.crossbar_config is not None:
            config = _with_crossbar_config(config, argv)
        _check_http2(config)
    except (EnvFileError, LogConfigError, ValueError) as exc:
        raise StartupError(str(exc)) from exc
    return config


def serve(config: Config, notes: Sequence[str] = ()) -> int:
    """Serve ``config`` in this process, or under the supervisor (``--workers``, ``--reload``)
    with its companions; log ``notes`` first. Returns the exit code. Call :func:`prepare`
    first."""
    from asgi_server.supervisor import Supervisor, serve_in_this_process

    for note in notes:
        logger.info("%s", note)
    if config.workers > 1 or config.reload:
        return Supervisor(config, supervisor_companions(config)).run()
    return serve_in_this_process(config)


#: Where the embedded channel layer for --workers is built: in consumers, imported by name
#: only, here, so that asgi_server imports neither consumers nor channel_layers (DESIGN.md).
EMBEDDED_LAYER_MODULE = "consumers.embedded_redis"


def supervisor_companions(config: Config) -> list[Companion]:
    """The supervisor's companions: with ``--workers`` above 1 and ``--embedded-layer`` on, an
    embedded Redis for the workers' channel layer unless one is configured (consumers decides
    and logs why not); none when consumers cannot be imported."""
    if config.workers <= 1 or not config.embedded_layer:
        return []
    try:
        module = importlib.import_module(EMBEDDED_LAYER_MODULE)
    except ImportError as exc:
        logger.debug("no embedded channel layer for the workers: %s", exc)
        return []
    companions: list[Companion] = module.supervisor_companions(config.workers, config.app_dir)
    return companions


def _check_http2(config: Config) -> None:
    """``--h2c``, or HTTP/2 over TLS with an ``h2`` to be found, needs ``h2`` importable: fail at
    startup with what to install, not at the first connection."""
    if not config.h2c and not (
        config.http2 and config.ssl_certfile and importlib.util.find_spec("h2") is not None
    ):
        return  # no h2c; over TLS without h2, ALPN offers HTTP/1.1 only
    try:
        importlib.import_module("h2.connection")
    except ImportError as exc:
        option = "--h2c" if config.h2c else "--http2"
        raise ValueError(
            f"{option} needs the h2 package ({exc}): pip install -e '.[http2]' in a checkout,"
            " pip install 'crossway[http2]' otherwise"
        ) from None


def _with_crossbar_config(config: Config, argv: Sequence[str] | None) -> Config:
    """Apply a Crossbar.io config file: the app it builds and its listening options, except
    where the command line gave an option itself. consumers is imported here only, by name."""
    if config.app:
        raise ValueError("give either an app or --crossbar-config, not both")
    crossbar = importlib.import_module("consumers.web.crossbar")
    explicit = set(vars(build_parser().parse_args(argv))) - {"app"}
    settings = crossbar.server_settings(config.crossbar_config)
    return config.with_changes(**{k: v for k, v in settings.items() if k not in explicit})
