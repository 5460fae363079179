"""HTTP/1.1 throughput: Crossway beside uvicorn, daphne, hypercorn and granian, in one go.

Every server runs the same app (``benchmarks/apps.py``) with its access log OFF, one process,
pinned to core 0 while wrk runs on core 1. Rounds are interleaved (each round starts every server
once, alternating the order) and the median of the rounds is reported, because the machine is
shared and absolute numbers drift: compare the ratios within one run, and the CPU time each
server spent per request (read from /proc; other work slows a server down but does not make it
burn more CPU per request). Scenarios:

- keepalive: ``wrk -t1 -c64`` GET /, keep-alive;
- close: the same with ``-H "Connection: close"``: one connection per request;
- upload: ``wrk -t1 -c8`` POST of 10 MiB (a Lua script), the app reads the whole body.

Run ``bash benchmarks/setup_peers.sh`` once, then ``.venv/bin/python -m benchmarks.http``
(``--help`` for the options). Raw results go to ``benchmarks/.results/http-<time>.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file: this module must not shadow the standard library's ``http`` package, and
    # ``benchmarks`` must be importable from the repository root.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from benchmarks import _common, _profile
from benchmarks._common import OURS_BIN, PEERS_BIN, RESULTS_DIR, ServerFailed

APP = "benchmarks.apps:app"
UPLOAD_BYTES = 10 * 1024 * 1024
SERVER_CPU, WRK_CPU = 0, 1

# wrk prints a one-line JSON summary from its done() hook: no parsing of its human output.
REPORT_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'CROSSWAY {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p99_us": %d,'
    .. ' "errors": %d}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""
UPLOAD_LUA = f"""
wrk.method = "POST"
wrk.body = string.rep("x", {UPLOAD_BYTES})
wrk.headers["Content-Type"] = "application/octet-stream"
"""

Command = Callable[[int, int], list[str]]


def _uvicorn_style(binary: Path, http: str, loop: str) -> Command:
    """Ours and uvicorn take the same flags."""

    def command(port: int, workers: int) -> list[str]:
        flags = f"--http {http} --loop {loop} --no-access-log --log-level warning --port {port}"
        extra = f" --workers {workers}" if workers > 1 else ""
        return [str(binary), APP, *(flags + extra).split()]

    return command


def _daphne(port: int, workers: int) -> list[str]:
    # -v 0: daphne writes an access log to stdout at its default verbosity 1.
    return [str(PEERS_BIN / "daphne"), *f"-b 127.0.0.1 -p {port} -v 0".split(), APP]


def _hypercorn(port: int, workers: int) -> list[str]:
    # No --access-logfile: hypercorn's access log is off unless one is given.
    flags = f"-k uvloop -w {workers} -b 127.0.0.1:{port} --log-level warning"
    return [str(PEERS_BIN / "hypercorn"), *flags.split(), APP]


def _granian(port: int, workers: int) -> list[str]:
    flags = (
        f"--interface asgi --http 1 --loop uvloop --workers {workers} --no-access-log"
        f" --log-level warning --host 127.0.0.1 --port {port}"
    )
    return [str(PEERS_BIN / "granian"), *flags.split(), APP]


SERVERS: dict[str, Command] = {
    "ours-h11": _uvicorn_style(OURS_BIN / "asgi-server", "h11", "asyncio"),
    "ours-httptools": _uvicorn_style(OURS_BIN / "asgi-server", "httptools", "uvloop"),
    "uvicorn-h11": _uvicorn_style(PEERS_BIN / "uvicorn", "h11", "asyncio"),
    "uvicorn-httptools": _uvicorn_style(PEERS_BIN / "uvicorn", "httptools", "uvloop"),
    "daphne": _daphne,
    "hypercorn": _hypercorn,
    "granian": _granian,
}
MULTI_WORKER = set(SERVERS) - {"daphne"}  # daphne has no worker-process option
# Where each server's own code lives, for the inclusive-time list of a profile.
PACKAGES = {name: f"{name}/" for name in ("uvicorn", "daphne", "hypercorn", "granian")}
PACKAGES["ours"] = "asgi_server/"
SCENARIOS = ("keepalive", "close", "upload")
SCENARIO_TITLES = {
    "keepalive": "keep-alive GET (wrk -c64)",
    "close": "Connection: close GET (wrk -c64 -H 'Connection: close')",
    "upload": "10 MiB POST upload, app reads the body (wrk -c8, Lua script)",
}
# (ours, peer, minimum ratio, scenario): the targets of issue 2.
TARGETS = [
    ("ours-httptools", "uvicorn-httptools", 1.15, "keepalive"),
    ("ours-httptools", "granian", 1.0, "keepalive"),
    ("ours-h11", "uvicorn-h11", 1.3, "keepalive"),
    ("ours-httptools", "uvicorn-httptools", 2.0, "upload"),
]


@dataclass
class Run:
    """One wrk measurement of one server in one scenario."""

    server: str
    scenario: str
    round: int
    requests_per_s: float
    p99_ms: float
    cpu_us_per_request: float
    errors: int
    load: str


def wrk_command(scenario: str, port: int, duration: float, pin: bool, threads: int) -> list[str]:
    """The wrk command line of a scenario (pinned to WRK_CPU when ``pin``)."""
    scripts = RESULTS_DIR / "wrk"
    scripts.mkdir(parents=True, exist_ok=True)
    script = scripts / f"{scenario}.lua"
    # Written aside then renamed: several benchmark runs may share this directory.
    partial = scripts / f".{scenario}.{os.getpid()}.lua"
    partial.write_text((UPLOAD_LUA if scenario == "upload" else "") + REPORT_LUA)
    partial.replace(script)
    connections = 8 if scenario == "upload" else 64
    flags = f"-t{threads} -c{connections} -d{duration:g}s --timeout 30s"
    args = ["wrk", *flags.split(), "-s", str(script)]
    if scenario == "close":
        args += ["-H", "Connection: close"]
    args.append(f"http://127.0.0.1:{port}/")
    return _common.pinned(args, WRK_CPU if pin else None)


def run_wrk(command: list[str], duration: float) -> dict[str, float]:
    """Run wrk and return the summary its done() hook printed."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    for line in result.stdout.splitlines():
        if line.startswith("CROSSWAY "):
            summary: dict[str, float] = json.loads(line.removeprefix("CROSSWAY "))
            return summary
    raise RuntimeError(f"wrk printed no summary: {result.stdout}{result.stderr}")


def measure_server(name: str, round_: int, args: argparse.Namespace) -> list[Run]:
    """Start one server, warm it up, run every chosen scenario against it, stop it."""
    pin = args.workers == 1 and _common.can_pin()
    port = _common.free_port()
    command = SERVERS[name](port, args.workers)
    with _common.start_server(name, command, port, cpu=SERVER_CPU if pin else None) as server:
        run_wrk(wrk_command("keepalive", port, 1, pin, 1 if pin else 2), 1)  # warm-up
        return [measure(server, scenario, round_, args, pin) for scenario in args.scenarios]


def measure(
    server: _common.Server, scenario: str, round_: int, args: argparse.Namespace, pin: bool
) -> Run:
    """One wrk run of one scenario against a running server (then a profiled one: --profile)."""
    command = wrk_command(scenario, server.port, args.duration, pin, 1 if pin else 2)
    cpu_before = _common.group_cpu_seconds(server.process.pid)
    summary = run_wrk(command, args.duration)
    cpu = _common.group_cpu_seconds(server.process.pid) - cpu_before
    run = Run(
        server=server.name,
        scenario=scenario,
        round=round_,
        requests_per_s=summary["requests"] / (summary["duration_us"] / 1e6),
        p99_ms=summary["p99_us"] / 1000,
        cpu_us_per_request=cpu * 1e6 / max(summary["requests"], 1),
        errors=int(summary["errors"]),
        load=_common.load_average(),
    )
    print(
        f"  {run.server:18} {scenario:9} {run.requests_per_s:10.0f} req/s "
        f"p99 {run.p99_ms:7.2f} ms  CPU {run.cpu_us_per_request:7.1f} us/req  "
        f"errors {run.errors}  load {run.load}",
        flush=True,
    )
    if args.profile:
        # A second run under py-spy, which pauses the server to sample it: its shares are
        # charged against the CPU per request of the clean run above.
        stacks = RESULTS_DIR / "profile" / f"{server.name}-{scenario}-{round_}.txt"
        native = args.profile == "native"
        with _profile.recording(server.process.pid, stacks, WRK_CPU if pin else None, native):
            run_wrk(command, args.duration)
        package = PACKAGES[server.name.split("-")[0]]
        report = _profile.summarize(stacks, run.cpu_us_per_request, package)
        stacks.with_suffix(".summary").write_text("\n".join(report) + "\n")
        print("\n".join("    " + line for line in report), flush=True)
    return run


def run_rounds(servers: list[str], args: argparse.Namespace) -> tuple[list[Run], dict[str, str]]:
    """Interleave: every round runs every server once, reversing the order on odd rounds."""
    runs: list[Run] = []
    failed: dict[str, str] = {}
    for round_ in range(args.rounds):
        order = servers if round_ % 2 == 0 else servers[::-1]
        print(f"round {round_ + 1}/{args.rounds} (load {_common.load_average()})", flush=True)
        for name in order:
            if name in failed:
                continue
            try:
                runs += measure_server(name, round_, args)
            except ServerFailed as error:
                failed[name] = str(error)
                print(f"  {name}: could not be measured: {error}", flush=True)
    return runs, failed


@dataclass(frozen=True)
class Row:
    """The medians over the rounds of one server in one scenario."""

    requests_per_s: float
    p99_ms: float
    cpu_us_per_request: float
    errors: int  # summed over the rounds


Table = dict[tuple[str, str], Row]


def medians(runs: list[Run]) -> Table:
    """(server, scenario) -> the medians of its rounds."""
    grouped: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        grouped.setdefault((run.server, run.scenario), []).append(run)
    return {
        key: Row(
            statistics.median(r.requests_per_s for r in group),
            statistics.median(r.p99_ms for r in group),
            statistics.median(r.cpu_us_per_request for r in group),
            sum(r.errors for r in group),
        )
        for key, group in grouped.items()
    }


def print_tables(servers: list[str], args: argparse.Namespace, runs: list[Run]) -> list[str]:
    """Print one table per scenario (req/s, p99, CPU, ratios ours/peer); return its lines."""
    table = medians(runs)
    ours = [s for s in servers if s.startswith("ours-") and any(k[0] == s for k in table)]
    lines: list[str] = []
    for scenario in args.scenarios:
        lines += ["", f"{SCENARIO_TITLES[scenario]}, median of {args.rounds} rounds:"]
        head = f"{'server':18} {'req/s':>10} {'p99 ms':>9} {'CPU us/req':>11} {'errors':>7}"
        lines.append(head + "".join(f" {o + '/peer':>20}" for o in ours))
        for server in servers:
            row = table.get((server, scenario))
            if row is None:
                continue
            ratios = "".join(
                f" {table[o, scenario].requests_per_s / row.requests_per_s:>19.2f}x"
                if (o, scenario) in table
                else " " * 21
                for o in ours
            )
            lines.append(
                f"{server:18} {row.requests_per_s:10.0f} {row.p99_ms:9.2f} "
                f"{row.cpu_us_per_request:11.1f} {row.errors:7d}{ratios}"
            )
    lines += target_lines(table)
    print("\n".join(lines))
    return lines


def target_lines(table: Table) -> list[str]:
    """One line per issue-2 target whose two servers were measured: ratio and met / MISSED."""
    lines = []
    for ours, peer, minimum, scenario in TARGETS:
        if (ours, scenario) in table and (peer, scenario) in table:
            mine, theirs = table[ours, scenario], table[peer, scenario]
            ratio = mine.requests_per_s / theirs.requests_per_s
            cpu_ratio = mine.cpu_us_per_request / theirs.cpu_us_per_request
            verdict = "met" if ratio >= minimum else "MISSED"
            lines.append(
                f"target {ours} >= {minimum}x {peer} ({scenario}): {ratio:.2f}x req/s {verdict}"
                f" (CPU per request, ours/peer: {cpu_ratio:.2f})"
            )
    return ["", *lines] if lines else []


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {list(SERVERS)}")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes per server (no pinning when > 1)"
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="python",
        choices=["python", "native"],
        help="after each run, run again under py-spy and print us of CPU per request per function "
        "('native' also sees C frames)",
    )
    args = parser.parse_args(argv)
    args.servers = [s for s in args.only.split(",") if s] or list(SERVERS)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    for name in args.servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}; choose from {', '.join(SERVERS)}")
    for scenario in args.scenarios:
        if scenario not in SCENARIOS:
            parser.error(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    return args


def git_commit() -> str:
    """The commit being measured (with '+dirty' when the tree has changes)."""
    run = subprocess.run(
        ["git", "describe", "--always", "--dirty=+dirty"],
        capture_output=True,
        text=True,
        cwd=_common.ROOT,
    )
    return run.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the tables and save the raw runs as JSON."""
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: run `bash benchmarks/setup_peers.sh` (it installs wrk)")
    servers = args.servers
    if any(not name.startswith("ours-") for name in servers):
        _common.require(PEERS_BIN / "uvicorn", "run `bash benchmarks/setup_peers.sh` first")
    if args.workers > 1:
        servers = [s for s in servers if s in MULTI_WORKER]
        print(f"--workers {args.workers}: daphne has no worker option and is skipped; no pinning")
    pin = args.workers == 1 and _common.can_pin()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(
        f"{started}, commit {git_commit()}, load {_common.load_average()}, "
        f"{'server on cpu 0, wrk on cpu 1' if pin else 'no CPU pinning'}, "
        "access logs off for every server",
        flush=True,
    )
    try:
        runs, failed = run_rounds(servers, args)
    finally:
        _common.stop_all()
    lines = print_tables(servers, args, runs)
    print(f"\nload average at the end: {_common.load_average()}")
    for name, error in failed.items():
        print(f"{name} was not measured: {error.splitlines()[0]}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"http-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    record = {
        "started": started,
        "commit": git_commit(),
        "argv": sys.argv,
        "pinned": pin,
        "runs": [asdict(r) for r in runs],
        "failed": failed,
        "table": lines,
    }
    out.write_text(json.dumps(record, indent=1))
    print(f"raw results: {out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        _common.stop_all()
        sys.exit("interrupted: every server started was stopped")
