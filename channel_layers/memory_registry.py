"""The in-memory registry: the nodes of one process (several routers on one in-memory layer).

A process's nodes die with it, so nothing here watches for death: every node is alive until it
leaves. Operations finish without awaiting anything, which makes each one atomic in the loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from channel_layers.registry import Claim, Entry, Registry, require_plain

if TYPE_CHECKING:
    from channel_layers.base import BaseChannelLayer


@dataclass
class _Key:
    exclusive: bool
    policy: str
    value: str
    members: dict[str, None] = field(default_factory=dict)


@dataclass
class _Space:
    keys: dict[str, _Key] = field(default_factory=dict)
    members: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # key, node, seq


class MemoryRegistry(Registry):
    """:class:`Registry` in this process's memory."""

    def __init__(self, layer: BaseChannelLayer | None = None) -> None:
        self._spaces: dict[str, _Space] = {}
        self._seq = 0

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
        """Add ``member`` to ``key`` (see the contract in ``channel_layers.registry``)."""
        require_plain(space=space, key=key, member=member, node=node, policy=policy, value=value)
        state = self._spaces.setdefault(space, _Space())
        held = state.keys.get(key)
        if held is None:
            if member in state.members:  # a member holds one key
                return Claim(False, exclusive, policy, value)
            held = state.keys[key] = _Key(exclusive, policy, value)
        elif held.exclusive or exclusive or held.policy != policy or member in state.members:
            return Claim(False, held.exclusive, held.policy, held.value)
        self._seq += 1
        held.members[member] = None
        state.members[member] = (key, node, self._seq)
        return Claim(True, held.exclusive, held.policy, held.value)

    async def release(self, space: str, member: str) -> bool:
        """Remove ``member``; False when it was not there."""
        state = self._spaces.get(space)
        if state is None or member not in state.members:
            return False
        key, _, _ = state.members.pop(member)
        held = state.keys[key]
        del held.members[member]
        if not held.members:
            del state.keys[key]
        if not state.members:
            del self._spaces[space]
        return True

    async def release_last(self, space: str, member: str) -> bool | None:
        """Remove ``member``; None when it was not there, True when its key went with it."""
        state = self._spaces.get(space)
        if state is None or member not in state.members:
            return None
        key = state.members[member][0]
        await self.release(space, member)
        return key not in state.keys

    async def entries(self, space: str) -> list[Entry]:
        """Every member of ``space`` in claim order."""
        state = self._spaces.get(space)
        if state is None:
            return []
        found = [
            Entry(key, member, node, seq, held.exclusive, held.policy, held.value)
            for member, (key, node, seq) in state.members.items()
            for held in (state.keys[key],)
        ]
        return sorted(found, key=lambda entry: entry.seq)

    async def alive(self, nodes: Iterable[str]) -> set[str]:
        """All of them: the nodes of one process live as long as it does."""
        return set(nodes)

    async def leave(self, space: str, node: str) -> int:
        """Remove the members ``node`` holds in ``space``."""
        state = self._spaces.get(space)
        if state is None:
            return 0
        mine = [member for member, (_, owner, _) in state.members.items() if owner == node]
        for member in mine:
            await self.release(space, member)
        return len(mine)
