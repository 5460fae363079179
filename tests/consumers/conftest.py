"""Fixtures for the consumer tests: a fresh in-memory channel layer per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import channel_layers


@pytest.fixture(autouse=True)
def memory_layer() -> Iterator[channel_layers.BaseChannelLayer]:
    """Each test gets its own in-memory layer as "default" (and no layer leaks between tests)."""
    channel_layers.configure({"default": {"BACKEND": "channel_layers.memory.InMemoryChannelLayer"}})
    layer = channel_layers.get_channel_layer()
    assert layer is not None
    yield layer
    channel_layers.reset_channel_layers()
