"""Fixtures for the consumer tests: a fresh in-memory channel layer per test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import channel_layers

# The examples (examples.chat) import from the repository root, as the server does.
REPO_ROOT = str(Path(__file__).resolve().parents[2])
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


@pytest.fixture(autouse=True)
def memory_layer() -> Iterator[channel_layers.BaseChannelLayer]:
    """Each test gets its own in-memory layer as "default" (and no layer leaks between tests)."""
    channel_layers.configure({"default": {"BACKEND": "channel_layers.memory.InMemoryChannelLayer"}})
    layer = channel_layers.get_channel_layer()
    assert layer is not None
    yield layer
    channel_layers.reset_channel_layers()
