"""The Context every Application handler gets first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .application import Application


@dataclass
class Context:
    """What a handler knows: its ``app``, the ``name`` it was called for (a procedure, topic,
    hook event or cron job) and ``details`` (e.g. a cron tick's time)."""

    app: Application
    name: str
    details: dict[str, Any] = field(default_factory=dict)

    async def publish(self, topic: str, *args: Any, **kwargs: Any) -> int:
        """Publish to ``topic`` in the app's realm."""
        return await self.app.wamp.publish(topic, *args, **kwargs)

    async def call(self, procedure: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``procedure`` in the app's realm."""
        return await self.app.wamp.call(procedure, *args, **kwargs)
