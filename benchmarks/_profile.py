"""Where a server's time goes under load: py-spy samples and a per-request summary.

py-spy runs from the peers' venv and pauses the target for each sample, which slows it down a lot
(so the caller measures req/s in a separate, clean run) but keeps every stack consistent: its
``--nonblocking`` mode costs nothing but, measured here, tears stacks (a frame shows under a
caller that never calls it), which misleads more than it helps.
The summary turns samples into microseconds of CPU per request: the caller measures the server's
CPU time per request from /proc (in an unprofiled run), and a function seen in a share
``n / total`` of the (non-idle) samples is charged that share of it.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from benchmarks._common import PEERS_BIN, pinned

RATE = 100  # samples per second: each one pauses the server


@contextlib.contextmanager
def recording(pid: int, output: Path, cpu: int | None, native: bool = False) -> Iterator[None]:
    """Sample ``pid`` (and its children) with py-spy while the block runs; write raw stacks."""
    output.parent.mkdir(parents=True, exist_ok=True)
    mode = ["--native"] if native else []
    flags = [
        *f"--subprocesses --nolineno --rate {RATE} --format raw".split(),
        "--output",
        str(output),
    ]
    command = [str(PEERS_BIN / "py-spy"), "record", "--pid", str(pid), *mode, *flags]
    spy = subprocess.Popen(
        pinned(command, cpu), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        # py-spy writes its output when interrupted, as on Ctrl-C.
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """Parse py-spy's raw (collapsed) output: one ``frame;frame;... count`` line per stack."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def summarize(path: Path, cpu_us_per_request: float, package: str, top: int = 12) -> list[str]:
    """The functions with the most self time, and those of ``package`` (a path fragment such as
    ``"asgi_server/"``) with the most inclusive time, in microseconds per request."""
    stacks = read_stacks(path)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks.items():
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    total = sum(stacks.values())
    if not total:
        return [f"no samples in {path}"]
    per_request = cpu_us_per_request / total
    lines = [f"{total} samples over {cpu_us_per_request:.1f} us of CPU per request"]
    ours = Counter({frame: n for frame, n in inclusive.items() if package in frame})
    for title, counter in (("self time", own), (f"inclusive time in {package}", ours)):
        lines.append(f"top {title}, us/request (share of samples):")
        for frame, count in counter.most_common(top):
            lines.append(f"  {count * per_request:7.2f}  ({count / total:6.1%})  {frame}")
    return lines
