"""MkDocs hook: the reference tables that the code already knows, generated at build time.

A page asks for a table with a marker line, ``<!-- generated: NAME -->``, and for one default
with ``[[default NAME]]`` (a ``Config`` field, formatted with its unit). The tables come from the
same place the code reads: ``asgi_server.config.Config`` (its fields and their metadata, as the
CLI is built), ``consumers.wamp.settings.Limits`` and the channel layers' constructors. So the
docs cannot disagree with a default; an unknown marker or field fails the build.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

REPO_ROOT = Path(__file__).resolve().parents[2]
# The checkout's packages, not whichever copy the environment has installed.
sys.path.insert(0, str(REPO_ROOT))
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)
DEFAULT = re.compile(r"\[\[default ([a-z0-9_]+)\]\]")
BYTE_FIELDS = (
    "limit_request_line",
    "limit_request_head",
    "limit_request_body",
    "ws_max_size",
    "h2_stream_window",
)
SECOND_FIELDS = ("timeout_", "ws_ping_", "reload_delay")


def _flag(field: dataclasses.Field[Any]) -> str:
    """The option's flag, exactly as ``asgi_server.cli`` derives it."""
    return str(field.metadata.get("flag", "--" + field.name.replace("_", "-")))


def _is_bool(kind: Any) -> bool:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return bool in typing.get_args(kind)
    return kind is bool


def _cli_fields() -> list[tuple[dataclasses.Field[Any], Any]]:
    from asgi_server.config import Config

    hints = typing.get_type_hints(Config)
    fields = dataclasses.fields(Config)
    return [(f, hints[f.name]) for f in fields if f.metadata.get("cli", True)]


def plain_default(default: Any) -> str:
    """A Config default as the options table shows it (none, or the value in backticks)."""
    if default is None or default == ():
        return "none"
    if isinstance(default, tuple):
        return "`" + ", ".join(default) + "`"
    if default == "":
        return '`""`'
    return f"`{default}`"


def server_options() -> str:
    """Every command-line option: flag (with its --no- form and aliases), default, help."""
    rows = ["| Option | Default | What it does |", "|---|---|---|"]
    for field, kind in _cli_fields():
        flag = _flag(field)
        name = f"`{flag} / --no-{flag[2:]}`" if _is_bool(kind) else f"`{flag}`"
        extra = [f"`{alias}`" for alias in field.metadata.get("aliases", ())]
        if "numbered" in field.metadata:
            numbered_flags, values = field.metadata["numbered"]
            extra.append("/".join(f"`{f}`" for f in numbered_flags) + f" 0-{len(values) - 1}")
        if extra:
            name += f" ({', '.join(extra)})"
        if typing.get_origin(kind) is typing.Literal:
            choices = ", ".join(f"`{choice}`" for choice in typing.get_args(kind))
            help_text = f"{field.metadata['help']} One of {choices}."
        else:
            help_text = field.metadata["help"]
        rows.append(f"| {name} | {plain_default(field.default)} | {help_text} |")
    return "\n".join(rows)


def config_default(name: str) -> str:
    """One Config default with its unit, for prose and the Limits table ("16 KiB", "10 s")."""
    from asgi_server.config import Config

    fields = {field.name: field for field in dataclasses.fields(Config)}
    if name not in fields:
        raise ValueError(f"[[default {name}]]: Config has no field {name!r}")
    value: Any = fields[name].default
    if value is None:
        return "none"
    if name in BYTE_FIELDS:
        for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
            if value % size == 0:
                return f"{value // size} {unit}"
        return f"{value} bytes"
    if name.startswith(SECOND_FIELDS):
        return f"{value:g} s"
    return str(value)


def dataclass_table(cls: type, title: str) -> str:
    """A frozen dataclass of settings: each field, its default and its ``#:`` comment."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
        elif match := re.match(r"(\w+)\s*:", stripped):
            comments[match[1]] = " ".join(pending)
            pending = []
    rows = [f"| `{title}` field | Default | What it limits, and what happens past it |"]
    rows.append("|---|---|---|")
    for field in dataclasses.fields(cls):
        if not comments.get(field.name):
            raise ValueError(f"{title}.{field.name} has no '#:' comment to document it")
        rows.append(f"| `{field.name}` | `{field.default}` | {comments[field.name]} |")
    return "\n".join(rows)


def wamp_limits() -> str:
    """``consumers.wamp.settings.Limits``, the router's limits."""
    from consumers.wamp import settings

    return dataclass_table(settings.Limits, "Limits")


def wamp_auth_limits() -> str:
    """``consumers.wamp.settings.AuthLimits``, the brute-force defences of authentication."""
    from consumers.wamp import settings

    return dataclass_table(settings.AuthLimits, "AuthLimits")


def _layer_classes() -> list[tuple[str, type]]:
    from channel_layers.memory import InMemoryChannelLayer
    from channel_layers.redis import RedisChannelLayer
    from channel_layers.redis_pubsub import RedisPubSubChannelLayer

    return [
        ("in-memory", InMemoryChannelLayer),
        ("Redis", RedisChannelLayer),
        ("Redis pub/sub", RedisPubSubChannelLayer),
    ]


def layer_settings() -> str:
    """The CONFIG keys each channel-layer backend takes, with its defaults (from __init__)."""
    layers = _layer_classes()
    defaults: dict[str, dict[str, str]] = {}
    for title, cls in layers:
        for name, parameter in inspect.signature(cls).parameters.items():
            if parameter.kind in (
                parameter.VAR_KEYWORD,
                parameter.VAR_POSITIONAL,
            ):
                continue
            value = parameter.default
            shown = "(required)" if value is parameter.empty else plain_default(value)
            defaults.setdefault(name, {})[title] = shown
    header = "| CONFIG key | " + " | ".join(f"{title}" for title, _ in layers) + " |"
    rows = [header, "|---" * (len(layers) + 1) + "|"]
    for name, per_layer in defaults.items():
        cells = [per_layer.get(title, "-") for title, _ in layers]
        rows.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "server-options": server_options,
    "wamp-limits": wamp_limits,
    "wamp-auth-limits": wamp_auth_limits,
    "layer-settings": layer_settings,
}


def expand(markdown: str) -> str:
    """Replace every marker and ``[[default NAME]]`` in one page's Markdown."""

    def table(match: re.Match[str]) -> str:
        if match[1] not in GENERATORS:
            raise ValueError(f"unknown generated table {match[1]!r}; known: {sorted(GENERATORS)}")
        return GENERATORS[match[1]]()

    markdown = MARKER.sub(table, markdown)
    return DEFAULT.sub(lambda match: config_default(match[1]), markdown)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """MkDocs event: the pictures benchmarks/README.md shows (the Benchmarks page includes that
    file, so its relative image links must resolve beside the page), and the demos' screenshots
    (``examples/<demo>/screenshots/``, written by their browser tests) for the Demos page."""
    for picture in sorted((REPO_ROOT / "benchmarks").glob("*.png")):
        files.append(File.generated(config, f"reference/{picture.name}", abs_src_path=str(picture)))
    for picture in sorted((REPO_ROOT / "examples").glob("*/screenshots/*.png")):
        name = f"tutorials/screenshots/{picture.parent.parent.name}/{picture.name}"
        files.append(File.generated(config, name, abs_src_path=str(picture)))
    return files


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs event: expand the generated parts of each page before it is rendered."""
    return expand(markdown)
