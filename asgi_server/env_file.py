"""``--env-file``: environment variables from a file of ``KEY=VALUE`` lines, as uvicorn loads them.

A small parser of our own instead of python-dotenv (not a dependency of Crossway): one
``KEY=VALUE`` per line, an optional ``export`` before the key, blank lines and ``#`` comments
skipped, a value in matching single or double quotes taken without them (inside double quotes
``\\n``, ``\\t``, ``\\"`` and ``\\\\`` are escapes), and an unquoted value cut at `` #``. No
variable expansion and no multi-line values. Variables already set in the environment win, as
with python-dotenv's default (``override=False``), so a deployment can still override the file.
"""

from __future__ import annotations

import os
import re

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


class EnvFileError(Exception):
    """The env file cannot be read or has a line that is not ``KEY=VALUE``."""


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), value[1:-1])
    return value.split(" #", 1)[0].rstrip()


def parse_env_file(text: str, path: str = "<env file>") -> dict[str, str]:
    """The variables that ``text``, the content of an env file, sets."""
    variables: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise EnvFileError(f"{path}, line {number}: expected KEY=VALUE, got {raw.strip()!r}")
        variables[key] = _unquote(value.strip())
    return variables


def load_env_file(path: str) -> dict[str, str]:
    """Set the variables of the env file at ``path`` that the environment does not already
    have; return the ones it set."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise EnvFileError(f"cannot read --env-file {path!r}: {exc.strerror or exc}") from exc
    loaded = {
        key: value for key, value in parse_env_file(text, path).items() if key not in os.environ
    }
    os.environ.update(loaded)
    return loaded
