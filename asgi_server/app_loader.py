"""Find the application: import ``module:attribute``, call a factory, wrap ASGI 2 apps.

Every failure raises ``AppLoadError`` with a message that says what is missing and what to try.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from typing import Any

from asgiref.compatibility import guarantee_single_callable
from asgiref.sync import iscoroutinefunction


class AppLoadError(Exception):
    """The application could not be found or built; the message says what to do."""


def import_from_string(spec: str) -> Any:
    """Import ``module:attribute`` (attribute may be dotted) and return the attribute."""
    module_name, sep, attrs = spec.partition(":")
    if not sep or not module_name or not attrs:
        raise AppLoadError(
            f"Application {spec!r} must be given as 'module:attribute', e.g. 'project.asgi:app'."
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise AppLoadError(
                f"Could not import module {module_name!r}: no module named {exc.name!r}. "
                "Check the spelling, and run from (or pass --app-dir) the directory that "
                "contains it."
            ) from exc
        raise AppLoadError(
            f"Importing {module_name!r} failed because it needs {exc.name!r}, which is not "
            f"installed; install it (pip install {exc.name})."
        ) from exc
    value: Any = module
    path = module_name
    for attr in attrs.split("."):
        if not hasattr(value, attr):
            raise AppLoadError(_missing_attribute(path, value, attr))
        value = getattr(value, attr)
        path = f"{path}.{attr}"
    return value


def _is_asgi_callable(value: Any) -> bool:
    """Whether ``value`` looks like an ASGI 3 app: a coroutine function, or an instance with an
    async ``__call__``, that takes (scope, receive, send). Classes (``URLRouter``, a consumer)
    and modules are not: they are what an app is built from."""
    if inspect.isclass(value) or inspect.ismodule(value) or not callable(value):
        return False
    function = value if inspect.isroutine(value) else type(value).__call__
    if not iscoroutinefunction(function) and not iscoroutinefunction(value):
        return False
    try:
        inspect.signature(value).bind(None, None, None)
    except TypeError:
        return False
    except ValueError:  # no signature to inspect (a builtin): trust the coroutine test
        pass
    return True


def _missing_attribute(path: str, owner: Any, attr: str) -> str:
    apps = [
        name
        for name in dir(owner)
        if not name.startswith("_") and _is_asgi_callable(getattr(owner, name, None))
    ]
    message = f"{path!r} has no attribute {attr!r}"
    close = difflib.get_close_matches(attr, apps, n=1, cutoff=0.3)
    if close:
        return f"{message}; did you mean {close[0]!r}?"
    if apps:
        listed = ", ".join(repr(name) for name in apps[:5])
        return f"{message}; the ASGI apps it defines: {listed}."
    return f"{message}."


def load_app(spec: str, factory: bool = False, app_dir: str = ".") -> Any:
    """Import the app named by ``spec`` (from ``app_dir``) and return it as an ASGI 3 callable."""
    if app_dir is not None:
        sys.path.insert(0, app_dir)
    app = import_from_string(spec)
    if factory:
        try:
            app = app()
        except TypeError as exc:
            raise AppLoadError(
                f"Calling the factory {spec!r} with no arguments failed: {exc}. "
                "Drop --factory if it is the app itself."
            ) from exc
    if not callable(app):
        raise AppLoadError(
            f"{spec!r} is not callable, so it is not an ASGI app"
            + ("; if it builds the app, pass --factory." if not factory else ".")
        )
    return as_asgi3(app)


def as_asgi3(app: Any) -> Any:
    """``app`` as an ASGI 3 callable: ASGI 2 apps (``app(scope)`` returning a coroutine
    function, e.g. a class) are wrapped."""
    return guarantee_single_callable(app)  # type: ignore[no-untyped-call]
