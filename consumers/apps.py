"""The Django app "consumers": add it to INSTALLED_APPS for ``manage.py runworker``."""

from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped]


class ConsumersConfig(AppConfig):  # type: ignore[misc]  # Django ships no type information
    """Registers the ``runworker`` management command."""

    name = "consumers"
    verbose_name = "Crossway consumers"
