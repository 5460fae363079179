"""Draw issue 18's comparison: Crossway against each peer, per question, as ratios (a PNG).

The numbers are those recorded in ``benchmarks/README.md`` ("Issue 18: where we stand"), written
below once per run, so that the chart and the table cannot disagree. Each bar is Crossway's
advantage over one peer (ours/peer for rates, peer/ours for CPU, latency and memory: right of
1.0x means Crossway is better), on a log scale, with the issue's target marked where it has one.

matplotlib lives in the ``benchmark`` extra (and in the peers' venv that ``setup_peers.sh``
makes): ``benchmarks/.peers/venv/bin/python -m benchmarks.plot`` writes
``benchmarks/issue18.png``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

OUTPUT = Path(__file__).resolve().parent / "issue18.png"

# (question, peer, Crossway's advantage as a ratio > 1 when better, target or None)
RATIOS: list[tuple[str, str, float, float | None]] = [
    # The final rerun of 2026-12-05 00:30-00:39 UTC (the README's "Final rerun").
    ("HTTP keep-alive, req per CPU-s", "Granian", 1.25, 1.5),
    ("HTTP keep-alive, req per CPU-s", "Uvicorn", 1.40, None),
    ("HTTP Connection: close, req per CPU-s", "Granian", 0.55, 1.0),
    ("HTTP Connection: close, req per CPU-s", "Uvicorn", 1.28, None),
    ("10 MiB upload, req/s", "Uvicorn", 2.07, None),
    ("WebSocket echo, msgs/s", "Granian", 2.74, None),
    ("Redis durable send+receive, msgs per CPU-s", "channels_redis", 11.9, 10.0),
    ("pub/sub send+receive, 1 loop, per CPU-s", "channels_redis pub/sub", 2.0, 2.0),
    ("pub/sub send+receive, 2 processes, per CPU-s", "channels_redis pub/sub", 1.89, 2.0),
    ("1000-member fan-out, durable, per CPU-s", "channels_redis", 10.9, 10.0),
    ("1000-member fan-out, pub/sub, deliveries/s", "channels_redis pub/sub", 1.8, 2.0),
    ("chat end to end, deliveries/s", "Daphne+Channels", 8.90, 6.0),
    ("chat end to end, deliveries/s", "Uvicorn+Channels", 6.94, None),
]
PEER_COLORS = {
    "Granian": "#d95f02",
    "Uvicorn": "#7570b3",
    "channels_redis": "#1b9e77",
    "channels_redis pub/sub": "#66a61e",
    "Daphne+Channels": "#e7298a",
    "Uvicorn+Channels": "#a6761d",
}


def draw(ratios: list[tuple[str, str, float, float | None]], output: Path) -> None:
    """One horizontal bar per (question, peer); a tick for the target; 1.0x is parity."""
    figure, axes = plt.subplots(figsize=(10, 0.45 * len(ratios) + 1.5))
    labels = [f"{question}\nvs {peer}" for question, peer, _, _ in ratios]
    positions = list(range(len(ratios)))[::-1]
    for y, (_, peer, ratio, target) in zip(positions, ratios, strict=True):
        axes.barh(y, ratio, color=PEER_COLORS.get(peer, "#666666"), height=0.7)
        axes.text(ratio * 1.03, y, f"{ratio:.2f}x", va="center", fontsize=8)
        if target is not None:
            axes.plot([target, target], [y - 0.4, y + 0.4], color="black", linewidth=2)
    axes.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    axes.set_xscale("log")
    axes.set_xlim(0.4, max(ratio for _, _, ratio, _ in ratios) * 1.6)
    axes.set_yticks(positions, labels, fontsize=7)
    axes.set_xlabel("Crossway's advantage over the peer (log scale; >1 is better; | = target)")
    axes.set_title("Issue 18: Crossway against each peer, per question (quiet rerun, medians)")
    figure.tight_layout()
    figure.savefig(output, dpi=110)


if __name__ == "__main__":
    draw(RATIOS, OUTPUT)
    print(f"wrote {OUTPUT}")
