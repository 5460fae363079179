"""Fixtures shared by the whole suite: free ports, real servers, a real Redis."""

from __future__ import annotations

import socket

import pytest


def get_free_port(host: str = "127.0.0.1") -> int:
    """Ask the OS for a TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    return get_free_port()
