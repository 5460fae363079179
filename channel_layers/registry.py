"""A shared registry with atomic claims: the channel layer capability a WAMP cluster stands on.

Every router process (a *node*) keeps its routing state in its own memory, but some decisions
need the whole cluster: "is this procedure already registered with ``single``?", "which nodes
have a subscriber for this topic?", "which node holds this callee?". The registry answers them.
The rules every backend keeps (``tests/channel_layers/test_registry.py`` runs them on each):

Spaces, keys and members
    A registry holds named *spaces* (one per realm and kind, e.g. ``"wamp.reg.realm1"``). In a
    space, a *key* (a procedure URI and its match policy) has *members* (the callees), each owned
    by a *node*: a process-local channel name that this layer made with ``new_channel()``.

Claims
    :meth:`Registry.claim` adds a member to a key atomically across every process on the layer.
    The first member of a key fixes its mode (exclusive or shared), its ``policy`` and its
    ``value``; a later claim is granted only when neither it nor the key is exclusive and its
    policy equals the key's. A refused claim changes nothing and reports the key's mode, policy
    and value. Members are numbered in claim order (``seq``), cluster-wide.

Release and death
    :meth:`Registry.release` removes a member; a key without members is gone
    (:meth:`Registry.release_last` also says whether this release emptied the key). A node's
    members die with its process: the Redis backend ties them to the layer's heartbeat of the node's
    process (``heartbeat_ttl``), so within that bound a claim no longer sees them and
    :meth:`Registry.entries` (which purges them) no longer returns them. :meth:`Registry.sweep`
    also returns the dead nodes' members it purged: a purge is atomic, so each such member is
    reported once in the whole cluster (how a WAMP cluster announces the sessions of a dead
    process once). :meth:`Registry.leave` removes a node's members at once (a graceful
    shutdown).

The in-memory registry serves the nodes of one process; the Redis registry is shared.
"""

from __future__ import annotations

import abc
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from channel_layers.base import load_capability

if TYPE_CHECKING:
    from channel_layers.base import BaseChannelLayer

__all__ = ["Claim", "Entry", "Registry", "register_registry", "registry_for"]

#: The separator the backends store records with; no space, key, member, node, policy or value
#: may contain it.
SEPARATOR = "\x1f"


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim: granted or not, and the key's mode, policy and value."""

    granted: bool
    exclusive: bool
    policy: str
    value: str


@dataclass(frozen=True)
class Entry:
    """One live member of a key, as :meth:`Registry.entries` lists it."""

    key: str
    member: str
    node: str
    seq: int
    exclusive: bool
    policy: str
    value: str


def require_plain(**fields: str) -> None:
    """Refuse values the backends cannot store (not a str, or holding :data:`SEPARATOR`)."""
    for name, value in fields.items():
        if not isinstance(value, str) or SEPARATOR in value:
            raise ValueError(f"registry {name} must be a str without '\\x1f', got {value!r}")


class Registry(abc.ABC):
    """A layer's shared registry (see the module docstring for the rules)."""

    @abc.abstractmethod
    async def claim(
        self,
        space: str,
        key: str,
        member: str,
        node: str,
        *,
        exclusive: bool,
        policy: str = "",
        value: str = "",
        purge: bool = True,
    ) -> Claim:
        """Add ``member`` (owned by ``node``) to ``key``, atomically; see "Claims". The key's
        members of dead nodes are dropped first, unless ``purge`` is False: then they count
        until a :meth:`sweep` reports them (so no dead member goes unreported)."""

    @abc.abstractmethod
    async def release(self, space: str, member: str) -> bool:
        """Remove ``member``; False when it was not there (released, or its node died)."""

    async def release_last(self, space: str, member: str) -> bool | None:
        """:meth:`release`, telling whether the key went with ``member``: None when ``member``
        was not there, True when it was the key's last member (a member of a dead node still
        counts until purged: the purge reports it). This default reads, releases and reads
        again (not atomic, and as long as the space); the backends here do it in one step."""
        keys = [entry.key for entry in await self.entries(space) if entry.member == member]
        if not await self.release(space, member):
            return None
        return not keys or all(entry.key != keys[0] for entry in await self.entries(space))

    @abc.abstractmethod
    async def entries(self, space: str) -> list[Entry]:
        """Every live member of ``space`` in claim order (members of dead nodes are purged)."""

    async def sweep(self, space: str) -> tuple[list[Entry], list[Entry]]:
        """:meth:`entries`, and the members of dead nodes this very call purged (each is
        reported by one call only). This default suits backends whose nodes cannot die before
        their process: it purges nothing."""
        return await self.entries(space), []

    @abc.abstractmethod
    async def alive(self, nodes: Iterable[str]) -> set[str]:
        """Those of ``nodes`` whose process is alive."""

    @abc.abstractmethod
    async def leave(self, space: str, node: str) -> int:
        """Remove every member ``node`` holds in ``space``; returns how many there were."""


# --- finding a layer's registry ---------------------------------------------------------------

#: Layer class ("module.Class") -> its registry class ("module.Class"), searched along the MRO.
_REGISTRY_CLASSES: dict[str, str] = {
    "channel_layers.memory.InMemoryChannelLayer": "channel_layers.memory_registry.MemoryRegistry",
    # RedisChannelLayer's __module__ is its public home, channel_layers.redis.
    "channel_layers.redis.RedisChannelLayer": "channel_layers.redis.registry.RedisRegistry",
    "channel_layers.redis_pubsub.RedisPubSubChannelLayer": (
        "channel_layers.redis.registry.RedisPubSubRegistry"
    ),
}
_registries: weakref.WeakKeyDictionary[BaseChannelLayer, Registry] = weakref.WeakKeyDictionary()


def register_registry(layer_class: str, registry_class: str) -> None:
    """Declare that layers of ``layer_class`` keep their registry in ``registry_class``."""
    _REGISTRY_CLASSES[layer_class] = registry_class


def registry_for(layer: BaseChannelLayer) -> Registry:
    """The registry of ``layer`` (one per layer object), or NotImplementedError."""
    registry: Registry | None = load_capability(layer, _REGISTRY_CLASSES, _registries)
    if registry is not None:
        return registry
    raise NotImplementedError(
        f"{type(layer).__name__} has no registry; a WAMP cluster needs the in-memory layer "
        "(one process), RedisChannelLayer or RedisPubSubChannelLayer"
    )
