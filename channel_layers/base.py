"""The channel layer contract: what every backend promises, and helpers backends share.

A channel layer carries messages between application instances. Its API is Django Channels'
(``send``, ``receive``, ``new_channel``, ``group_add``, ``group_discard``, ``group_send``,
``flush``, ``close``), so consumers written for Channels run unchanged. The rules below are the
contract; ``tests/channel_layers/test_contract.py`` enforces them on every backend.

Names
    Channel and group names are ``str`` of ASCII letters, digits, ``-``, ``_`` and ``.``,
    shorter than :data:`MAX_NAME_LENGTH` (100) characters. A channel name may contain one ``!``:
    ``prefix!suffix`` names a process-local channel, which only the process that created it
    (via :meth:`BaseChannelLayer.new_channel`) receives from. An invalid name raises
    :class:`InvalidChannelName` at once.

Messages
    A message is a ``dict`` with a ``str`` ``"type"`` key. Anything else raises
    :class:`InvalidMessage` at once. Backends that serialize (Redis) also raise
    :class:`InvalidMessage` when a value cannot be serialized; values that always work are
    ``dict`` (str keys), ``list``, ``tuple``, ``str``, ``bytes``, ``int``, ``float``, ``bool``
    and ``None``. The receiver gets a copy: sender and receiver never share mutable state.

Delivery
    At most once, in the order sent (per sender and channel). ``send`` to a full channel raises
    :class:`ChannelFull`. ``group_send`` never raises it: a full member misses that message,
    and the layer logs one WARNING per ``group_send`` naming the group and the number of
    dropped deliveries and counts them in :attr:`BaseChannelLayer.stats`. (Dropping rather than
    growing keeps one stuck consumer from exhausting the memory of every process.)

Expiry
    A message not received within ``expiry`` seconds is dropped, never delivered late. A group
    membership not refreshed by ``group_add`` within ``group_expiry`` seconds is dropped.

Cancellation
    A ``receive()`` that is cancelled loses no message: the next ``receive()`` on that channel
    gets every message exactly once, in order.

Receive readiness (a capability)
    :meth:`BaseChannelLayer.receive_ready` returns a future that completes when a message is
    waiting on a channel, so that a receiver can wait without a task of its own (an idle
    consumer then costs one task, not two). Backends without it return None; callers then await
    ``receive()`` in a task as before. The rules are in the method's docstring.

Work queues (a capability)
    Backends that store messages also keep work queues with leases, acknowledgements and
    atomic claims, for task queues and cron: :meth:`BaseChannelLayer.queue_store`, with the
    rules in ``channel_layers/queues.py`` and ``tests/channel_layers/test_queues.py``.

Registry (a capability)
    The memory and Redis backends (pub/sub too) also keep a shared registry with atomic claims
    whose entries die with their process, for WAMP clusters: :meth:`BaseChannelLayer.registry`,
    with the rules in ``channel_layers/registry.py`` and ``tests/channel_layers/test_registry.py``.
"""

from __future__ import annotations

import abc
import asyncio
import fnmatch
import importlib
import logging
import os
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:
    from channel_layers.queues import QueueStore
    from channel_layers.registry import Registry

logger = logging.getLogger("channel_layers")

#: Channel and group names must be shorter than this (Channels' limit).
MAX_NAME_LENGTH = 100

_ALLOWED_CHARS = "ASCII letters, digits, '-', '_' or '.'"
# Explicit character classes: ``\d`` and ``\w`` would also accept non-ASCII digits and letters.
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9\-_.]+(![A-Za-z0-9\-_.]*)?")
_GROUP_NAME = re.compile(r"[A-Za-z0-9\-_.]+")

#: What a ``channel_capacity`` key may be: a channel name, a glob (``"http.*"``) or a compiled
#: regular expression, exactly as in Channels.
CapacityPattern = str | re.Pattern[str]


class ChannelLayerError(Exception):
    """Base class of every error a channel layer raises on purpose."""


class ChannelFull(ChannelLayerError):
    """``send`` found the channel at capacity; the message was not queued."""


class LayerUnavailable(ChannelLayerError):
    """The backend (e.g. a Redis server) cannot be reached; every backend raises this one.

    Raised by ``send`` or ``group_send`` it means *maybe delivered*: the command may have
    reached the server before the connection failed or the answer timed out (a frozen Redis
    runs it once it resumes). A caller that retries may therefore deliver twice; receivers
    that must not act twice should drop duplicates by an id the sender puts in the message
    (``channel_layers.dedup``).
    """


class InvalidChannelName(ChannelLayerError, TypeError, ValueError):
    """A channel or group name breaks the naming rules (a TypeError, as in Channels)."""


class InvalidMessage(ChannelLayerError, TypeError, ValueError):
    """A message is not a dict with a str ``"type"``, or cannot be serialized by the backend."""


@dataclass
class LayerStats:
    """Counters a layer keeps about itself; backends count what they can observe."""

    #: Messages accepted by ``send`` (one per call).
    sent: int = 0
    #: Messages handed out by ``receive``.
    received: int = 0
    #: ``group_send`` calls.
    group_sends: int = 0
    #: Deliveries queued by ``group_send`` (one per member reached).
    group_deliveries: int = 0
    #: Deliveries ``group_send`` dropped because a member channel was full.
    dropped_full: int = 0
    #: Messages dropped because they were older than ``expiry`` when reached.
    expired: int = 0


def random_suffix() -> str:
    """A fresh, unguessable suffix for process-local channel names (16 hex digits)."""
    return os.urandom(8).hex()


class BaseChannelLayer(abc.ABC):
    """The contract every channel layer keeps (see the module docstring), plus shared helpers.

    Constructor options are Channels' and mean the same: ``expiry`` (seconds a message waits
    before it is dropped), ``group_expiry`` (seconds a membership lives without a refreshing
    ``group_add``), ``capacity`` (messages a channel holds before ``send`` raises
    :class:`ChannelFull`) and ``channel_capacity`` (per-channel capacities, keyed by name, glob
    or compiled regex; the first matching key wins).
    """

    #: Optional features, as Channels advertises them.
    extensions: ClassVar[list[str]] = ["groups", "flush"]
    #: True when channels and groups live in this process only (the in-memory layer): several
    #: server processes then each have their own, and a group_send reaches one process's members.
    process_local: ClassVar[bool] = False
    MAX_NAME_LENGTH: ClassVar[int] = MAX_NAME_LENGTH

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[CapacityPattern, int] | None = None,
    ) -> None:
        _require_positive("expiry", expiry)
        _require_positive("group_expiry", group_expiry)
        _require_capacity("capacity", capacity)
        self.expiry = float(expiry)
        self.group_expiry = float(group_expiry)
        self.capacity = capacity
        self.channel_capacity = compile_capacities(channel_capacity or {})
        self.stats = LayerStats()

    # --- the contract ------------------------------------------------------------------------

    @abc.abstractmethod
    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue ``message`` on ``channel``; raise :class:`ChannelFull` when it is at capacity.

        :class:`ChannelFull` means not queued. :class:`LayerUnavailable` means maybe queued
        (see there): a retry after it is at-least-once delivery, not exactly-once.
        """

    @abc.abstractmethod
    async def receive(self, channel: str) -> dict[str, Any]:
        """Wait for and return the next message on ``channel``, oldest first.

        Cancelling the wait loses no message. Expired messages are skipped, never returned.
        """

    def receive_ready(self, channel: str) -> asyncio.Future[None] | None:
        """A future that completes when ``channel`` has a message for ``receive()``, or None
        when this backend cannot tell (the default; await ``receive()`` in a task instead).

        It only signals: the message stays queued, and the next ``receive()`` takes it, so
        capacity (ChannelFull), expiry and order are those of ``receive()``. It may complete
        early: the message may have expired meanwhile, or the backend may need a round trip
        (a pub/sub subscription): ``receive()`` then waits as usual. It completes with
        LayerUnavailable when the backend lost its server; ``receive()`` then raises or waits
        for it. Cancelling it loses no message and releases what the wait held. It belongs
        to the running event loop, and each call makes a new one.
        """
        return None

    @abc.abstractmethod
    async def new_channel(self, prefix: str = "specific") -> str:
        """Return a new process-local channel name ``"<prefix>.<tag>!<random>"`` to receive on."""

    @abc.abstractmethod
    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group``, or refresh its membership's ``group_expiry`` clock."""

    @abc.abstractmethod
    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; doing so when it is not a member is no error."""

    @abc.abstractmethod
    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Deliver a copy of ``message`` to every member of ``group``; never raises ChannelFull.

        Members at capacity miss the message: counted in ``stats.dropped_full`` and logged once
        per call at WARNING (see :meth:`record_group_drops`).
        """

    @abc.abstractmethod
    async def flush(self) -> None:
        """Drop every message and every group membership this layer holds."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections (idempotent). As in Channels, a closed layer stays usable: the
        next call reconnects, so one cached layer can serve several event loops in turn."""

    def queue_store(self) -> QueueStore:
        """This layer's work queues (``channel_layers/queues.py``); NotImplementedError when
        the backend has none (pub/sub stores nothing)."""
        from channel_layers.queues import store_for

        return store_for(self)

    def registry(self) -> Registry:
        """This layer's shared registry (``channel_layers/registry.py``); NotImplementedError
        when the backend has none."""
        from channel_layers.registry import registry_for

        return registry_for(self)

    async def close_pools(self) -> None:
        """channels_redis' name for :meth:`close`, kept so code written for it runs unchanged."""
        await self.close()

    async def __aenter__(self) -> Self:
        """``async with layer:`` closes the layer on the way out."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- helpers for backends ----------------------------------------------------------------

    @property
    def dropped_messages(self) -> int:
        """Deliveries dropped so far because a group member's channel was full."""
        return self.stats.dropped_full

    def get_capacity(self, channel: str) -> int:
        """The capacity of ``channel``: the first matching ``channel_capacity`` entry, else
        ``capacity``."""
        for pattern, capacity in self.channel_capacity:
            if pattern.match(channel):
                return capacity
        return self.capacity

    def require_valid_channel_name(self, name: object) -> str:
        """Return ``name`` if it is a valid channel name, else raise InvalidChannelName."""
        if isinstance(name, str) and len(name) < MAX_NAME_LENGTH and _CHANNEL_NAME.fullmatch(name):
            return name
        raise InvalidChannelName(_name_error("channel", name, allow_bang=True))

    def require_valid_group_name(self, name: object) -> str:
        """Return ``name`` if it is a valid group name, else raise InvalidChannelName."""
        if isinstance(name, str) and len(name) < MAX_NAME_LENGTH and _GROUP_NAME.fullmatch(name):
            return name
        raise InvalidChannelName(_name_error("group", name, allow_bang=False))

    def valid_channel_name(self, name: object, receive: bool = False) -> bool:
        """Channels-compatible check: True for a valid channel name, else InvalidChannelName."""
        self.require_valid_channel_name(name)
        return True

    def valid_group_name(self, name: object) -> bool:
        """Channels-compatible check: True for a valid group name, else InvalidChannelName."""
        self.require_valid_group_name(name)
        return True

    def require_valid_message(self, message: object) -> dict[str, Any]:
        """Return ``message`` if it is a dict with a str ``"type"``, else raise InvalidMessage."""
        if not isinstance(message, dict):
            raise InvalidMessage(
                f"a channel layer message must be a dict, got {type(message).__name__}; "
                "send e.g. {'type': 'chat.message', 'text': '...'}"
            )
        message_type = message.get("type")
        if not isinstance(message_type, str):
            raise InvalidMessage(
                "a channel layer message needs a str 'type' key naming its handler "
                f"(e.g. 'chat.message'); got {message_type!r}"
            )
        return message

    def non_local_name(self, name: str) -> str:
        """The part of a channel name up to and including ``!``; the whole name if it has none."""
        bang = name.find("!")
        return name if bang < 0 else name[: bang + 1]

    def make_channel_name(self, prefix: str, tag: str) -> str:
        """Build a fresh process-local name ``"<prefix>.<tag>!<random>"`` for new_channel()."""
        self.require_valid_group_name(prefix)
        name = f"{prefix}.{tag}!{random_suffix()}"
        return self.require_valid_channel_name(name)

    def record_group_drops(self, group: str, dropped: int, members: int) -> None:
        """Count and log (once per group_send) the deliveries a group_send dropped."""
        if dropped <= 0:
            return
        self.stats.dropped_full += dropped
        logger.warning(
            "group_send to %r dropped %d of %d deliveries because those members' channels were "
            "full (capacity reached); raise 'capacity' or 'channel_capacity', or make the "
            "consumers keep up",
            group,
            dropped,
            members,
        )


def find_unsupported(
    value: object, path: str, keys: tuple[type, ...], leaves: tuple[type, ...]
) -> tuple[str, str] | None:
    """The (path, type name) of the first value in nested dicts, lists and tuples that is not a
    ``leaves`` instance (or is a dict key outside ``keys``), else None.

    The serializers and the queue store each pass their own rules; ints must fit in 64 bits
    because msgpack carries no bigger ones.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, keys):
                return f"{path} key {key!r}", type(key).__name__
            found = find_unsupported(item, f"{path}[{key!r}]", keys, leaves)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_unsupported(item, f"{path}[{index}]", keys, leaves)
            if found:
                return found
        return None
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return path, "int beyond 64 bits"
    if isinstance(value, leaves):
        return None
    return path, type(value).__name__


def load_capability(
    layer: BaseChannelLayer,
    classes: Mapping[str, str],
    made: weakref.WeakKeyDictionary[BaseChannelLayer, Any],
) -> Any:
    """The object implementing a capability (a registry, a queue store) for ``layer``: the
    class ``classes`` names (by dotted path) for the first of the layer's classes it knows,
    imported lazily, built once per layer object and kept in ``made``; None when none is known."""
    found = made.get(layer)
    if found is not None:
        return found
    for cls in type(layer).__mro__:
        path = classes.get(f"{cls.__module__}.{cls.__qualname__}")
        if path is not None:
            module_name, _, class_name = path.rpartition(".")
            found = getattr(importlib.import_module(module_name), class_name)(layer)
            made[layer] = found
            return found
    return None


def compile_capacities(
    channel_capacity: Mapping[CapacityPattern, int],
) -> list[tuple[re.Pattern[str], int]]:
    """Turn Channels-style ``channel_capacity`` keys (names, globs, regexes) into regexes."""
    compiled: list[tuple[re.Pattern[str], int]] = []
    for pattern, capacity in channel_capacity.items():
        _require_capacity(f"channel_capacity[{pattern!r}]", capacity)
        if isinstance(pattern, re.Pattern):
            compiled.append((pattern, capacity))
        elif isinstance(pattern, str):
            compiled.append((re.compile(fnmatch.translate(pattern)), capacity))
        else:
            raise TypeError(
                f"channel_capacity keys must be channel names, globs or compiled regexes, "
                f"got {pattern!r}"
            )
    return compiled


def _name_error(kind: str, name: object, allow_bang: bool) -> str:
    if not isinstance(name, str):
        return f"{kind} name must be a str, got {type(name).__name__}"
    if len(name) >= MAX_NAME_LENGTH:
        return f"{kind} name {name[:20]!r}... is {len(name)} characters; use fewer than 100"
    bang = " and at most one '!' (process-local names, 'prefix!suffix')" if allow_bang else ""
    return f"{kind} name {name!r} is invalid: use 1 to 99 {_ALLOWED_CHARS}{bang}"


def _require_positive(option: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{option} must be a positive number of seconds, got {value!r}")


def _require_capacity(option: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{option} must be a positive int (messages per channel), got {value!r}")
