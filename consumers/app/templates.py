"""``app.render(name, context)``: Django's template engine when Django is configured, else
Jinja2 (the ``app`` extra) from the ``templates/`` directory beside the app's module."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any


def _django_configured() -> bool:
    try:
        settings = importlib.import_module("django.conf").settings
    except ImportError:
        return False
    return bool(settings.configured and getattr(settings, "TEMPLATES", None))


@cache
def _jinja_environment(directory: str) -> Any:
    try:
        jinja2 = importlib.import_module("jinja2")
    except ImportError:
        raise RuntimeError(
            "app.render() needs Jinja2 (pip install 'crossway[app]') or a configured Django"
        ) from None
    loader = jinja2.FileSystemLoader(directory)
    return jinja2.Environment(loader=loader, autoescape=jinja2.select_autoescape())


def render(template: str, context: dict[str, Any], directory: str) -> str:
    """Render ``template`` with ``context`` to a string (Jinja2 looks in ``directory``)."""
    if _django_configured():
        loader = importlib.import_module("django.template.loader")
        return str(loader.render_to_string(template, context))
    environment = _jinja_environment(directory)
    return str(environment.get_template(template).render(**context))
