"""The monitoring agent: ``python -m examples.monitoring.agent --server http://127.0.0.1:8000``.

An autobahn-python component. On start it POSTs its address to ``<server>/clients/settings``
and gets its settings back (the server adds a machine it does not know); then, joined to the
router at ``<server>/ws``, it publishes ``clientstats`` every ``frequency`` seconds (per-CPU
load, memory, disks, as the settings allow; nothing while disabled) and applies the settings
published on ``clientconfig.<ip>`` when staff save the machine in the admin.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import psutil

logger = logging.getLogger("monitoring.agent")
REALM = "realm1"


def local_address(server: str) -> str:
    """The address this machine reaches the server from (no packet is sent: UDP connect)."""
    parts = urlsplit(server)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((parts.hostname or "127.0.0.1", parts.port or 80))
        address: str = probe.getsockname()[0]
    return address


def fetch_settings(server: str, ip: str, name: str, wait: float = 30) -> dict[str, Any]:
    """POST our address and name to the server; its answer is our settings. A server that is
    not up yet is tried again for ``wait`` seconds."""
    body = json.dumps({"ip": ip, "name": name}).encode()
    request = urllib.request.Request(
        server.rstrip("/") + "/clients/settings",
        data=body,
        headers={"content-type": "application/json"},
    )
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                settings: dict[str, Any] = json.load(response)
            return settings
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def collect(settings: dict[str, Any]) -> dict[str, Any]:
    """One sample of what the settings ask for (per-CPU %, memory, disks)."""
    stats: dict[str, Any] = {"ip": settings["ip"], "name": settings["name"]}
    if settings["show_cpus"]:
        stats["cpus"] = psutil.cpu_percent(percpu=True)
    if settings["show_memory"]:
        memory = psutil.virtual_memory()
        stats["memory"] = {"percent": memory.percent, "used": memory.used, "total": memory.total}
    if settings["show_disk"]:
        stats["disks"] = [
            {"mount": part.mountpoint, "percent": psutil.disk_usage(part.mountpoint).percent}
            for part in psutil.disk_partitions(all=False)[:4]
        ]
    return stats


async def report(session: Any, settings: dict[str, Any], changed: asyncio.Event) -> None:
    """Publish a sample every ``frequency`` seconds; a settings change takes effect at once."""
    psutil.cpu_percent(percpu=True)  # the first reading only starts the measurement
    while True:
        if not settings["disabled"]:
            session.publish("clientstats", collect(settings))
        changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout=settings["frequency"])


def main(argv: list[str] | None = None) -> None:
    """Parse the options, fetch the settings, then join and report until stopped."""
    from autobahn.asyncio.component import Component, run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:8000", help="the demo's address")
    parser.add_argument("--ip", help="the address to report as (default: this machine's)")
    parser.add_argument("--name", default=socket.gethostname(), help="a name for the admin")
    options = parser.parse_args(argv)
    # Our lines at INFO; autobahn logs its own (connection attempts) through txaio.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logger.setLevel(logging.INFO)

    ip = options.ip or local_address(options.server)
    settings = fetch_settings(options.server, ip, options.name)
    logger.info("settings for %s: %s", ip, settings)
    parts = urlsplit(options.server)
    ws_scheme = "wss" if parts.scheme == "https" else "ws"
    component = Component(transports=f"{ws_scheme}://{parts.netloc}/ws", realm=REALM)
    changed = asyncio.Event()

    def apply(new_settings: dict[str, Any]) -> None:
        settings.update(new_settings)
        logger.info("new settings: %s", settings)
        changed.set()

    reporting: list[asyncio.Task[None]] = []

    @component.on_join  # type: ignore[misc]
    async def joined(session: Any, details: Any) -> None:
        await session.subscribe(apply, f"clientconfig.{ip}")
        reporting.append(asyncio.ensure_future(report(session, settings, changed)))

    @component.on_leave  # type: ignore[misc]
    async def left(session: Any, details: Any) -> None:
        while reporting:
            reporting.pop().cancel()

    run([component], log_level="warn")


if __name__ == "__main__":
    main()
