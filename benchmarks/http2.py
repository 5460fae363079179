"""HTTP/2 throughput: Crossway beside Hypercorn and Granian, on TLS (ALPN h2) and on h2c.

Every server runs the same app (``benchmarks/apps.py``, hello world) with its access log off, one
process pinned to core 0, while ``h2load -c 16 -m 32`` (16 connections, 32 streams in flight on
each) runs on core 1. Rounds are interleaved and the median is reported, with the CPU time each
server spent per request (read from /proc: steadier than req/s on a shared machine).

Run ``bash benchmarks/setup_peers.sh`` once (Hypercorn and Granian go to benchmarks/.peers/venv),
install h2load (Debian: ``apt-get install nghttp2-client``), then
``.venv/bin/python -m benchmarks.http2`` (``--help`` for the options). Raw results go to
``benchmarks/.results/http2-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from benchmarks import _common
from benchmarks._common import OURS_BIN, PEERS_BIN, RESULTS_DIR, ServerFailed

APP = "benchmarks.apps:app"
SERVER_CPU, LOAD_CPU = 0, 1
SCENARIOS = ("tls", "h2c")
TLS_DIR = RESULTS_DIR / "tls"

Command = Callable[[int, bool], list[str]]


def _ours(port: int, tls: bool) -> list[str]:
    flags = f"{APP} --no-access-log --log-level warning --port {port} --loop uvloop"
    extra = f" --ssl-certfile {TLS_DIR / 'cert.pem'} --ssl-keyfile {TLS_DIR / 'key.pem'}"
    return [str(OURS_BIN / "asgi-server"), *(flags + (extra if tls else " --h2c")).split()]


def _hypercorn(port: int, tls: bool) -> list[str]:
    # h2 by ALPN over TLS, h2c by prior knowledge on cleartext: both on by default.
    flags = f"-k uvloop -w 1 -b 127.0.0.1:{port} --log-level warning"
    extra = f" --certfile {TLS_DIR / 'cert.pem'} --keyfile {TLS_DIR / 'key.pem'}"
    return [str(PEERS_BIN / "hypercorn"), *(flags + (extra if tls else "")).split(), APP]


def _granian(port: int, tls: bool) -> list[str]:
    flags = (
        "--interface asgi --http 2 --loop uvloop --workers 1 --no-access-log"
        f" --log-level warning --host 127.0.0.1 --port {port}"
    )
    extra = f" --ssl-certificate {TLS_DIR / 'cert.pem'} --ssl-keyfile {TLS_DIR / 'key.pem'}"
    return [str(PEERS_BIN / "granian"), *(flags + (extra if tls else "")).split(), APP]


SERVERS: dict[str, Command] = {"ours": _ours, "hypercorn": _hypercorn, "granian": _granian}


@dataclass
class Run:
    """One h2load measurement of one server in one scenario."""

    server: str
    scenario: str
    round: int
    requests_per_s: float
    cpu_us_per_request: float
    failed: int
    load: str


def make_certificate() -> None:
    """A self-signed certificate for 127.0.0.1 (made once, kept in .results/tls)."""
    if (TLS_DIR / "cert.pem").exists():
        return
    TLS_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(TLS_DIR / "key.pem"), "-out", str(TLS_DIR / "cert.pem"),
         "-subj", "/CN=127.0.0.1", "-days", "30"],
        check=True, capture_output=True,
    )  # fmt: skip


def url(port: int, scenario: str) -> str:
    """h2load speaks h2 over TLS to https:// and prior-knowledge h2c to http://."""
    return f"{'https' if scenario == 'tls' else 'http'}://127.0.0.1:{port}/"


def h2load(target: str, requests: int, pin: bool, connections: int = 16, streams: int = 32) -> str:
    """Run h2load; return its output."""
    command = ["h2load", "-n", str(requests), "-c", str(connections), "-m", str(streams), target]
    result = subprocess.run(
        _common.pinned(command, LOAD_CPU if pin else None),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result.stdout + result.stderr


def ready_for(scenario: str) -> Callable[[_common.Server, float], None]:
    """Readiness by one HTTP/2 request (granian's h2-only mode does not answer HTTP/1.1)."""

    def ready(server: _common.Server, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise ServerFailed(f"{server.name} exited:\n{server.log_tail()}")
            if "1 succeeded" in h2load(url(server.port, scenario), 1, False, 1, 1):
                return
            time.sleep(0.2)
        raise ServerFailed(f"{server.name} did not answer HTTP/2:\n{server.log_tail()}")

    return ready


def measure(name: str, scenario: str, round_: int, args: argparse.Namespace) -> Run:
    """Start one server, warm it up, run h2load, stop it."""
    port = _common.free_port()
    pin = _common.can_pin() and not args.no_pin
    command = SERVERS[name](port, scenario == "tls")
    with _common.start_server(
        f"{name}-{scenario}", command, port, cpu=SERVER_CPU if pin else None,
        ready=ready_for(scenario),
    ) as server:  # fmt: skip
        h2load(url(port, scenario), max(1000, args.requests // 10), pin)  # warm-up
        before = _common.group_cpu_seconds(server.process.pid)
        output = h2load(url(port, scenario), args.requests, pin)
        cpu = _common.group_cpu_seconds(server.process.pid) - before
    match = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output)  # ms under 1 s
    done = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", output
    )
    if match is None or done is None:
        raise ServerFailed(f"h2load against {name} ({scenario}) said:\n{output[-2000:]}")
    succeeded = int(done.group(2))
    return Run(
        name, scenario, round_, float(match.group(1)), cpu / max(succeeded, 1) * 1e6,
        int(done.group(3)), _common.load_average(),
    )  # fmt: skip


def report(runs: list[Run], servers: list[str], scenarios: list[str]) -> list[str]:
    """Median req/s and CPU per request per server and scenario, and our ratios to each peer."""
    lines = []
    for scenario in scenarios:
        lines.append(f"\n{scenario}: h2load -c 16 -m 32 (median of rounds)")
        lines.append(f"{'server':<12} {'req/s':>9} {'CPU us/req':>11} {'failed':>7}")
        medians: dict[str, tuple[float, float]] = {}
        for name in servers:
            mine = [r for r in runs if r.server == name and r.scenario == scenario]
            if not mine:
                continue
            rps = statistics.median(r.requests_per_s for r in mine)
            cpu = statistics.median(r.cpu_us_per_request for r in mine)
            medians[name] = (rps, cpu)
            lines.append(f"{name:<12} {rps:>9.0f} {cpu:>11.0f} {sum(r.failed for r in mine):>7}")
        if "ours" in medians:
            for peer, (rps, cpu) in medians.items():
                if peer != "ours":
                    ours = medians["ours"]
                    lines.append(
                        f"ours / {peer}: {ours[0] / rps:.2f}x req/s, "
                        f"{cpu / ours[1]:.2f}x less CPU per request"
                    )
    return lines


def main(argv: list[str] | None = None) -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000, help="requests per h2load run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--only", default=",".join(SERVERS), help="comma-separated servers")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="tls, h2c or both")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to cores")
    args = parser.parse_args(argv)
    if shutil.which("h2load") is None:
        raise SystemExit("h2load is missing: apt-get install nghttp2-client")
    servers = [s for s in args.only.split(",") if s]
    for name in servers:
        if name != "ours":
            _common.require(PEERS_BIN / name, "run bash benchmarks/setup_peers.sh")
    scenarios = [s for s in args.scenarios.split(",") if s]
    make_certificate()
    runs = []
    for round_ in range(args.rounds):
        order = servers if round_ % 2 == 0 else servers[::-1]
        for scenario in scenarios:
            for name in order:
                run = measure(name, scenario, round_, args)
                rate, cpu = run.requests_per_s, run.cpu_us_per_request
                print(f"round {round_} {scenario} {name}: {rate:.0f} req/s, {cpu:.0f} us CPU/req,"
                      f" load {run.load}", flush=True)  # fmt: skip
                runs.append(run)
    lines = report(runs, servers, scenarios)
    print("\n".join(lines))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"http2-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    print(f"\nraw results: {out}")


if __name__ == "__main__":
    main()
