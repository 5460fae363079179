"""Channel layers: the message bus between application instances (in-memory and Redis)."""

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

__all__ = [
    "MAX_NAME_LENGTH",
    "BaseChannelLayer",
    "ChannelFull",
    "ChannelLayerError",
    "InvalidChannelName",
    "InvalidMessage",
    "LayerStats",
    "LayerUnavailable",
]
