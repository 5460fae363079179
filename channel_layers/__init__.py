"""Channel layers: the message bus between application instances (in-memory and Redis).

``get_channel_layer(alias)`` returns this process's layer for ``alias``, built once from the
first of these that exists:

1. an explicit ``configure({...})`` call;
2. Django's ``CHANNEL_LAYERS`` setting, when Django is installed and its settings are configured;
3. the ``CHANNEL_LAYERS_URL`` environment variable (for the "default" alias);
4. ``memory://``: the in-memory layer. (Channels returns None when nothing is configured; we
   default to memory so that groups work out of the box in one process.)

The configuration format is Channels': ``{"default": {"BACKEND": "dotted.path", "CONFIG":
{...}}}``, and Channels' backend paths are accepted as aliases of ours, so settings copied from
a Channels project work. As in Channels, an alias missing from a configuration that exists, or
an empty ``CHANNEL_LAYERS``, gives None.

URLs: ``memory://?capacity=100&expiry=60``, ``redis://host:6379/0?prefix=asgi`` (and
``rediss://``) for :class:`channel_layers.redis.RedisChannelLayer`, ``redis+pubsub://...`` for
:class:`channel_layers.redis_pubsub.RedisPubSubChannelLayer`.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Mapping
from importlib.metadata import version as _distribution_version
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from channel_layers.base import (
    MAX_NAME_LENGTH,
    BaseChannelLayer,
    ChannelFull,
    ChannelLayerError,
    InvalidChannelName,
    InvalidMessage,
    LayerStats,
    LayerUnavailable,
)

#: The installed distribution's version (one number for its three packages).
__version__ = _distribution_version("crossway")

__all__ = [
    "DEFAULT_CHANNEL_LAYER",
    "MAX_NAME_LENGTH",
    "BaseChannelLayer",
    "ChannelFull",
    "ChannelLayerError",
    "InvalidChannelName",
    "InvalidMessage",
    "LayerStats",
    "LayerUnavailable",
    "__version__",
    "build_channel_layer",
    "configure",
    "current_config",
    "get_channel_layer",
    "layer_config_from_url",
    "reset_channel_layers",
]

#: The alias consumers use unless told otherwise (as in Channels).
DEFAULT_CHANNEL_LAYER = "default"
URL_ENVIRONMENT_VARIABLE = "CHANNEL_LAYERS_URL"
DEFAULT_URL = "memory://"

#: Channels' and channels_redis' backend paths, mapped to ours.
BACKEND_ALIASES: dict[str, str] = {
    "channels.layers.InMemoryChannelLayer": "channel_layers.memory.InMemoryChannelLayer",
    "channels_redis.core.RedisChannelLayer": "channel_layers.redis.RedisChannelLayer",
    "channels_redis.pubsub.RedisPubSubChannelLayer": (
        "channel_layers.redis_pubsub.RedisPubSubChannelLayer"
    ),
}

_URL_BACKENDS: dict[str, str] = {
    "memory": "channel_layers.memory.InMemoryChannelLayer",
    "redis": "channel_layers.redis.RedisChannelLayer",
    "rediss": "channel_layers.redis.RedisChannelLayer",
    "redis+pubsub": "channel_layers.redis_pubsub.RedisPubSubChannelLayer",
    "rediss+pubsub": "channel_layers.redis_pubsub.RedisPubSubChannelLayer",
    "unix": "channel_layers.redis.RedisChannelLayer",  # a Redis on a Unix socket: unix:///path
}
# URL query parameters that are layer options (the rest stay in a Redis URL for redis-py).
_NUMERIC_OPTIONS = {"expiry": float, "group_expiry": float, "capacity": int}

LayersConfig = Mapping[str, Mapping[str, Any]]

_configured: LayersConfig | None = None
_layers: dict[str, BaseChannelLayer | None] = {}
_build_lock = threading.Lock()


def configure(layers: LayersConfig) -> None:
    """Set the layers explicitly, in Channels' CHANNEL_LAYERS format; forgets built layers."""
    global _configured
    if not isinstance(layers, Mapping):
        raise TypeError(
            "configure() takes a mapping like {'default': {'BACKEND': "
            f"'channel_layers.memory.InMemoryChannelLayer'}}, got {type(layers).__name__}"
        )
    _configured = dict(layers)
    _layers.clear()


def reset_channel_layers() -> None:
    """Forget built layers and any configure() call (for tests). Does not close the layers."""
    global _configured
    _configured = None
    _layers.clear()


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> BaseChannelLayer | None:
    """This process's layer for ``alias`` (built on first use, then cached), or None."""
    if alias in _layers:
        return _layers[alias]
    # Sync consumers run in threads: two of them must not build two separate layers.
    with _build_lock:
        if alias in _layers:
            return _layers[alias]
        layers = _current_config()
        spec = layers.get(alias) if layers is not None else None
        if layers is None and alias == DEFAULT_CHANNEL_LAYER:
            url = os.environ.get(URL_ENVIRONMENT_VARIABLE) or DEFAULT_URL
            spec = layer_config_from_url(url)
        layer = build_channel_layer(spec, alias) if spec is not None else None
        _layers[alias] = layer
        return layer


def current_config() -> LayersConfig | None:
    """The layers this process is configured with: a configure() mapping, else Django's
    CHANNEL_LAYERS, else None (then the default alias comes from CHANNEL_LAYERS_URL)."""
    return _current_config()


def _current_config() -> LayersConfig | None:
    """The configure() mapping, else Django's CHANNEL_LAYERS, else None (use the URL)."""
    if _configured is not None:
        return _configured
    return _django_channel_layers()


def _django_channel_layers() -> LayersConfig | None:
    """Django's CHANNEL_LAYERS when Django is installed and configured; imported lazily so that
    channel_layers works without Django."""
    try:
        # Through importlib: Django ships no type information, and this is the one use of it.
        settings = importlib.import_module("django.conf").settings
    except ImportError:
        return None
    # Settings named by DJANGO_SETTINGS_MODULE are loaded on first access, so count them too.
    if not (settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE")):
        return None
    _watch_django_settings()
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if layers is None:
        return None
    if not isinstance(layers, Mapping):
        raise TypeError(
            "settings.CHANNEL_LAYERS must be a dict like {'default': {'BACKEND': ...}}, "
            f"got {type(layers).__name__}"
        )
    return layers


def _watch_django_settings() -> None:
    """Forget built layers whenever Django's CHANNEL_LAYERS changes, as Channels does, so that
    ``override_settings(CHANNEL_LAYERS=...)`` in a test takes effect (and is undone after)."""
    signals = importlib.import_module("django.core.signals")
    # A dispatch_uid makes repeated calls connect the receiver once.
    signals.setting_changed.connect(_on_setting_changed, dispatch_uid="channel_layers.reset")


def _on_setting_changed(setting: str = "", **_: Any) -> None:
    if setting == "CHANNEL_LAYERS" and _configured is None:
        _layers.clear()


def build_channel_layer(spec: Mapping[str, Any], alias: str = "?") -> BaseChannelLayer:
    """Instantiate a layer from ``{"BACKEND": "dotted.path", "CONFIG": {...}}``."""
    if not isinstance(spec, Mapping) or "BACKEND" not in spec:
        raise ValueError(
            f"channel layer {alias!r} needs a 'BACKEND' key, e.g. "
            "{'BACKEND': 'channel_layers.memory.InMemoryChannelLayer', 'CONFIG': {}}"
        )
    path = BACKEND_ALIASES.get(spec["BACKEND"], spec["BACKEND"])
    options = dict(spec.get("CONFIG") or {})
    cls = _import_backend(path, alias)
    try:
        layer = cls(**options)
    except TypeError as exc:
        raise TypeError(f"channel layer {alias!r} ({path}): bad CONFIG: {exc}") from exc
    if not isinstance(layer, BaseChannelLayer):
        raise TypeError(f"channel layer {alias!r}: {path} is not a BaseChannelLayer subclass")
    return layer


def _import_backend(path: str, alias: str) -> Any:
    module_name, _, class_name = str(path).rpartition(".")
    if not module_name:
        raise ValueError(f"channel layer {alias!r}: BACKEND {path!r} is not a dotted path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _EXTRA_OF_MODULE.get((exc.name or "").partition(".")[0])
        if extra is not None:
            raise ImportError(
                f"channel layer {alias!r} ({path}) needs the {exc.name!r} package, which is not "
                f"installed; {_install_hint(extra)}"
            ) from exc
        raise ImportError(f"channel layer {alias!r}: cannot import {path}: {exc}") from exc
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ImportError(
            f"channel layer {alias!r}: module {module_name} has no {class_name!r}"
        ) from None


# The third-party packages of our backends, and the extra of the distribution that has them.
_EXTRA_OF_MODULE = {"redis": "redis", "msgpack": "redis"}


def _install_hint(extra: str) -> str:
    """How to install one of the distribution's extras. Crossway is on no package index, so
    it is installed from a checkout or a built wheel, never by name alone."""
    return (
        f"install the {extra!r} extra: pip install -e '.[{extra}]' in a Crossway checkout, "
        f"or pip install 'crossway[{extra}] @ file:///path/to/crossway' (a checkout or a wheel)"
    )


def layer_config_from_url(url: str) -> dict[str, Any]:
    """Turn a layer URL (memory://, redis://, redis+pubsub://, rediss...) into a BACKEND spec."""
    parts = urlsplit(url)
    backend = _URL_BACKENDS.get(parts.scheme)
    if backend is None:
        raise ValueError(
            f"unsupported channel layer URL {url!r}: use memory://, redis://host:port/db, "
            "rediss://..., redis+pubsub://host:port/db or unix:///path/to/redis.sock"
        )
    options: dict[str, Any] = {}
    passthrough: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _NUMERIC_OPTIONS:
            options[key] = _number(key, value, _NUMERIC_OPTIONS[key])
        elif key == "prefix" and parts.scheme != "memory":
            options[key] = value
        elif key == "heartbeat_ttl" and parts.scheme in ("redis", "rediss"):
            options[key] = _number(key, value, float)  # how soon a dead process's state goes
        elif parts.scheme == "memory":
            raise ValueError(
                f"memory:// does not take {key!r}; it takes expiry, group_expiry and capacity"
            )
        else:
            passthrough.append((key, value))
    if parts.scheme != "memory":
        scheme = parts.scheme.removesuffix("+pubsub")
        address = urlunsplit((scheme, parts.netloc, parts.path, urlencode(passthrough), ""))
        if scheme == "unix" and not parts.netloc:
            # urlunsplit writes "unix:/path" for an empty host; keep the URL as it was given, so
            # the logs name it as the user wrote it ("unix:///path", not "unix:/path://").
            address = "unix://" + address.removeprefix("unix:")
        options["hosts"] = [address]
    return {"BACKEND": backend, "CONFIG": options}


def _number(key: str, value: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(
            f"channel layer URL option {key}={value!r} is not a number; use e.g. {key}=60"
        ) from None
