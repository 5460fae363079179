"""A consumer's link to its channel layer: the groups it is in, and riding out a layer outage.

A consumer outlives an outage of its layer (Redis restarted, frozen or unreachable): its layer
reader waits and retries with a short jittered backoff, its channel keeps its name, its groups
are added again when the layer answers (Redis may have lost them), and its client connection stays
open. Only the reading is patient: the consumer's own ``send``/``group_send`` calls still raise
``LayerUnavailable`` at once, so the application can tell its user.

To re-add its groups the consumer must know them, also those joined by calling
``self.channel_layer.group_add(group, self.channel_name)`` directly (as Channels' tutorial does):
``consumer.channel_layer`` is therefore a *view* of the process's layer, an instance of a subclass
of the layer's own class that shares the layer's ``__dict__`` (so every method and attribute works
on the same state, and ``isinstance`` holds) and notes the memberships of the consumer's channel.
The view costs one small object per consumer.

The log says once per layer alias when consumers lose the layer and once when the last of them
has it back (both WARNING, so that a filter shows both or neither), not a line per consumer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any, Protocol

from channel_layers.base import LayerUnavailable

if TYPE_CHECKING:
    from channel_layers import BaseChannelLayer

logger = logging.getLogger("consumers")

#: Backoff between retries of a lost layer: doubling from the first to the last, with jitter so
#: that a thousand consumers do not retry in step. The last bounds how late delivery resumes.
RETRY_FIRST = 0.05
RETRY_MAX = 0.5


class Member(Protocol):
    """What a view needs from its consumer."""

    channel_name: str | None
    _memberships: tuple[str, ...]
    _layer_retry_at: float  # 0.0, or the monotonic time of the next attempt during an outage
    _layer_retry_delay: float


class _MembershipView:
    """Mixed in before the layer's class: records group_add/group_discard of the owner's channel."""

    __slots__ = ("_member",)
    _member: Member

    async def group_add(self, group: str, channel: str) -> None:
        await super().group_add(group, channel)  # type: ignore[misc]
        member = self._member
        if channel == member.channel_name and group not in member._memberships:
            member._memberships += (group,)

    async def group_discard(self, group: str, channel: str) -> None:
        await super().group_discard(group, channel)  # type: ignore[misc]
        member = self._member
        if channel == member.channel_name and group in member._memberships:
            member._memberships = tuple(g for g in member._memberships if g != group)


_view_classes: dict[type[Any], type[Any]] = {}


def membership_view(layer: BaseChannelLayer, member: Member) -> BaseChannelLayer:
    """``layer`` as seen by one consumer: the same state, with its memberships recorded."""
    layer_class = type(layer)
    view_class = _view_classes.get(layer_class)
    if view_class is None:
        name = f"{layer_class.__name__}View"
        view_class = type(name, (_MembershipView, layer_class), {"__slots__": ()})
        view_class.__module__ = __name__
        _view_classes[layer_class] = view_class
    view = object.__new__(view_class)  # no __init__: it shares the layer's state below
    view.__dict__ = layer.__dict__
    view._member = member
    result: BaseChannelLayer = view
    return result


# alias -> how many consumers are waiting for that layer to come back
_waiting: dict[str, int] = {}
_outage_started: dict[str, float] = {}


def _lost(alias: str, exc: BaseException) -> None:
    count = _waiting.get(alias, 0)
    _waiting[alias] = count + 1
    if count == 0:
        _outage_started[alias] = time.monotonic()
        logger.warning(
            "channel layer %r is unavailable (%s); consumers keep their connections and retry "
            "until it is back",
            alias,
            exc,
        )


def _back(alias: str, recovered: bool) -> None:
    count = _waiting.get(alias, 1) - 1
    if count > 0:
        _waiting[alias] = count
        return
    _waiting.pop(alias, None)
    started = _outage_started.pop(alias, time.monotonic())
    if recovered:  # at WARNING too: whoever saw the outage's line must see its end
        logger.warning(
            "channel layer %r is back after %.1fs; consumers re-joined their groups",
            alias,
            time.monotonic() - started,
        )


async def receive_through_outages(
    layer: BaseChannelLayer, channel: str, member: Member, alias: str
) -> dict[str, Any]:
    """The next message of ``channel``, waiting as long as the layer is unavailable.

    The outage's state (when to try next, how long to back off) lives on ``member``, not in
    this coroutine: the consumer's loop cancels this wait whenever a client message arrives,
    and an active client must not reset the backoff or keep its groups from being re-added.
    """
    while True:
        if member._layer_retry_at:
            message = await _try_again(layer, channel, member, alias)
            if message is not None:
                return message
            continue
        try:
            return await layer.receive(channel)
        except LayerUnavailable as exc:
            _lost(alias, exc)
            member._layer_retry_delay = RETRY_FIRST
            member._layer_retry_at = time.monotonic() + RETRY_FIRST * random.uniform(0.5, 1.0)


async def _try_again(
    layer: BaseChannelLayer, channel: str, member: Member, alias: str
) -> dict[str, Any] | None:
    """One attempt at the appointed time: re-add the memberships, then wait for a message. A
    message, or a wait of one backoff period without an error, means the layer is back."""
    await asyncio.sleep(max(0.0, member._layer_retry_at - time.monotonic()))
    delay = member._layer_retry_delay
    try:
        for group in member._memberships:
            await layer.group_add(group, channel)
        async with asyncio.timeout(delay):
            message: dict[str, Any] | None = await layer.receive(channel)
    except LayerUnavailable:
        member._layer_retry_delay = min(delay * 2, RETRY_MAX)
        member._layer_retry_at = time.monotonic() + delay * random.uniform(0.5, 1.0)
        return None
    except TimeoutError:
        message = None  # waited without an error: the layer is serving again
    leave_outage(member, alias, recovered=True)
    return message


def leave_outage(member: Member, alias: str, *, recovered: bool) -> None:
    """``member`` has the layer back (or ended during the outage): stop counting it."""
    if member._layer_retry_at:
        member._layer_retry_at = 0.0
        _back(alias, recovered)
