"""Channels-compatibility alias (``channels.layers``): re-exports :mod:`channel_layers`.

The layers live in the ``channel_layers`` package; this module re-exports what Channels users
import from ``channels.layers``, so ``from consumers.layers import get_channel_layer`` works.
"""

from __future__ import annotations

from channel_layers import DEFAULT_CHANNEL_LAYER, BaseChannelLayer, get_channel_layer
from channel_layers.memory import InMemoryChannelLayer

__all__ = ["DEFAULT_CHANNEL_LAYER", "BaseChannelLayer", "InMemoryChannelLayer", "get_channel_layer"]
