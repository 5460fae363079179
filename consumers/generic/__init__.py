"""Channels-compatibility aliases (``channels.generic``): ``consumers.generic.websocket`` and
``consumers.generic.http`` re-export the consumers, so replacing ``channels.`` with
``consumers.`` in an import is enough."""
