"""Saving a Client publishes its settings on ``clientconfig.<ip>``: its agent and every dashboard
react at once. Sync code (a Django signal) publishing through ``consumers.wamp.publish_sync``."""

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from consumers.wamp import publish_sync

from .models import Client

REALM = "realm1"
logger = logging.getLogger(__name__)


def publish_settings(settings: dict[str, Any]) -> None:
    """Publish one machine's settings; outside the server (``manage.py shell``) only log."""
    try:
        publish_sync(REALM, f"clientconfig.{settings['ip']}", settings)
    except RuntimeError as exc:  # no router running in this process
        logger.warning("settings of %s not published: %s", settings["ip"], exc)


@receiver(post_save, sender=Client)
def client_saved(sender: type[Client], instance: Client, **kwargs: Any) -> None:
    """Publish after the transaction commits, so readers never see settings that roll back."""
    settings = instance.settings()
    transaction.on_commit(lambda: publish_settings(settings))
