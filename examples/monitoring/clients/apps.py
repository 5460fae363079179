"""The ``clients`` app: the monitored machines and their settings."""

from django.apps import AppConfig


class ClientsConfig(AppConfig):
    """Connects the signal that publishes a machine's settings when it is saved."""

    name = "examples.monitoring.clients"
    label = "clients"
    verbose_name = "Monitored machines"

    def ready(self) -> None:
        """Connect ``post_save`` of ``Client`` to the WAMP publication of its settings."""
        from . import signals  # noqa: F401
