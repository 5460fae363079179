"""RFC 6455 / RFC 7692 conformance: the Autobahn|Testsuite fuzzing client against our server.

Runs ``wstest -m fuzzingclient`` (every case, 9.* performance and 12.*/13.* compression
included) against our server serving the echo app of ``benchmarks/websocket.py``, with
``--ws-max-size`` above the 16 MiB messages of cases 9.*, and prints how many cases ended
OK / NON-STRICT / INFORMATIONAL / FAILED / UNIMPLEMENTED (exit status 1 if any FAILED).

wstest is Python 2 only. On first use this script builds ``.conformance/venv`` (git-ignored)
with a Python 2.7 interpreter (``--python2``, default: pyenv's 2.7.18 or ``python2.7`` on PATH)
and the last versions of the test suite's dependencies that still support 2.7 (``PINS``).
The HTML report lands in ``.conformance/reports/index.html``.

Run: ``.venv/bin/python -m benchmarks.conformance`` (``--cases 1.*,12.1.*`` for a subset).
Not part of CI: cases 1.* to 10.* take ~2-5 minutes, but 12.*/13.* (1000 compressed messages
per case, masked by wstest in pure Python 2) take over an hour on a busy 2-core machine, and
wstest writes its report only at the end. Subsets (``--cases 13.1.*``) run in parallel well.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".conformance"
VENV = WORK / "venv"
WSTEST = VENV / "bin" / "wstest"
# Found by trying: newer releases of these dropped Python 2.7 (or broke autobahn 0.10.9).
PINS = [
    "autobahntestsuite==25.10.1",
    "autobahn==0.10.9",
    "Twisted==19.10.0",
    "txaio==2.1.0",
    "six==1.16.0",
    "zope.interface==4.6.0",
    "incremental==16.10.1",
    "pyOpenSSL==19.1.0",
    "cryptography==3.3.2",
    "service-identity==18.1.0",
]
BEHAVIOURS = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED")
MAX_SIZE = 20 * 1024 * 1024  # cases 9.1.6 / 9.2.6 send 16 MiB messages


def find_python2(explicit: str | None) -> str:
    """The Python 2.7 interpreter to build the venv with, or exit with how to get one."""
    candidates = [explicit] if explicit else []
    candidates += [str(Path.home() / ".pyenv/versions/2.7.18/bin/python"), "python2.7"]
    for candidate in candidates:
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    sys.exit("wstest needs Python 2.7: install it (e.g. `pyenv install 2.7.18`) or pass --python2")


def ensure_wstest(python2: str | None) -> None:
    """Create .conformance/venv with wstest unless it is already there."""
    if WSTEST.exists():
        return
    interpreter = find_python2(python2)
    print(f"building {VENV} with {interpreter} (once)", flush=True)
    # virtualenv 20.22 dropped Python 2 support; older ones still create 2.7 environments.
    subprocess.run([interpreter, "-m", "pip", "install", "-q", "virtualenv<20.22"], check=True)
    subprocess.run([interpreter, "-m", "virtualenv", "-q", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *PINS], check=True)


def write_spec(port: int, cases: list[str]) -> Path:
    """The fuzzingclient spec: one server (ours), the chosen cases."""
    spec = {
        "outdir": str(WORK / "reports"),
        "servers": [{"agent": "crossway", "url": f"ws://127.0.0.1:{port}"}],
        "cases": cases,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    path = WORK / "fuzzingclient.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


def summarise(index: Path) -> tuple[collections.Counter[str], list[str]]:
    """Count each case's behaviour; list the cases that did not pass, with why."""
    results = json.loads(index.read_text())["crossway"]
    counts: collections.Counter[str] = collections.Counter()
    problems = []
    for case, result in sorted(results.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
        counts[result["behavior"]] += 1
        if result["behavior"] in ("FAILED", "UNIMPLEMENTED") or result["behaviorClose"] not in (
            "OK",
            "INFORMATIONAL",
        ):
            problems.append(f"{case}: {result['behavior']} (close: {result['behaviorClose']})")
    return counts, problems


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", default="*", help="comma-separated case patterns (default *)")
    parser.add_argument("--python2", default=None, help="a Python 2.7 interpreter for wstest")
    parser.add_argument("--no-deflate", action="store_true", help="serve without compression")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Build wstest if needed, run it against our server, print the summary."""
    from benchmarks import _common

    args = parse_args(argv)
    ensure_wstest(args.python2)
    WORK.mkdir(exist_ok=True)
    port = _common.free_port()
    command = [
        str(_common.OURS_BIN / "asgi-server"),
        "benchmarks.websocket:app",
        "--port",
        str(port),
        "--ws-max-size",
        str(MAX_SIZE),
        "--log-level",
        "warning",
        "--no-access-log",
        *(["--no-ws-per-message-deflate"] if args.no_deflate else []),
    ]
    spec = write_spec(port, args.cases.split(","))
    started = time.monotonic()
    log = WORK / "wstest.log"
    print(f"running wstest (progress in {log})", flush=True)
    with _common.start_server("conformance", command, port), log.open("wb") as out:
        subprocess.run(
            [str(WSTEST), "-m", "fuzzingclient", "-s", str(spec)],
            cwd=WORK,
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    minutes = (time.monotonic() - started) / 60
    counts, problems = summarise(WORK / "reports" / "index.json")
    print("\n".join(problems))
    total = sum(counts.values())
    print(
        f"{total} cases in {minutes:.1f} min: "
        + ", ".join(f"{counts.get(b, 0)} {b}" for b in BEHAVIOURS)
        + f"; report: {WORK / 'reports' / 'index.html'}"
    )
    sys.exit(1 if counts.get("FAILED") else 0)


if __name__ == "__main__":
    main()
