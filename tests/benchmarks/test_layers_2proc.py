"""The two-process layer benchmark's harness, run briefly on our own Redis layers.

The peers (channels_redis) live in a venv CI does not build, so only our backends run here:
a real sender and a real receiver process through the private Redis of the test session.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

# benchmarks/ is not an installed package: import it from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import layers_2proc
from benchmarks.layers import BACKENDS


@pytest.mark.parametrize("name", ["crossway-redis-pubsub", "crossway-redis"])
def test_sender_and_receiver_processes_carry_every_message(name: str, redis_url: str) -> None:
    """Every message sent in the measured phase is acked by the receiver process, and both
    processes' CPU per message is reported."""
    backend = BACKENDS[name]
    spec = {
        "layer_class": backend.layer_class,
        "options": layers_2proc._with_url(backend.options, redis_url),
        "seconds": 0.2,
    }
    assert spec["options"]["hosts"] == [redis_url]
    result = asyncio.run(layers_2proc.sender(spec))
    assert result["msgs_per_s"] > 0
    assert result["sender_us"] > 0 and result["receiver_us"] > 0
    assert result["per_cpu_s"] == pytest.approx(1e6 / (result["sender_us"] + result["receiver_us"]))


def test_report_gives_medians_and_per_round_ratios() -> None:
    """The ratio is the median of the per-round ratios, wall and per CPU second."""
    peer = {"msgs_per_s": 100.0, "per_cpu_s": 10.0, "sender_us": 1.0, "receiver_us": 1.0}
    ours = [
        {**peer, "msgs_per_s": 200.0, "per_cpu_s": 30.0},
        {**peer, "msgs_per_s": 500.0, "per_cpu_s": 20.0},
        {**peer, "msgs_per_s": 300.0, "per_cpu_s": 50.0},
    ]
    lines = layers_2proc.report(
        {"channels-redis-pubsub": [peer] * 3, "crossway-redis-pubsub": ours}
    )
    assert lines[-1].startswith(
        "crossway-redis-pubsub vs channels-redis-pubsub: 3.00x msgs/s (2.00, 5.00, 3.00), "
        "3.00x per CPU-s (3.00, 2.00, 5.00)"
    )
