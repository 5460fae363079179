"""How fast are task queues? consumers.tasks on Redis next to arq and Celery, on one Redis.

No-op tasks, one producer, one worker process running 16 at once (ours: ``--concurrency 16``;
arq: ``max_jobs=16``; Celery: ``-P threads -c 16``), each system in turn on a private
redis-server (flushed between them). Per system, ``--count`` tasks:

- throughput: enqueued as fast as one producer goes; tasks/s from the first enqueue to the
  last task's start report (each task RPUSHes its wait; the producer polls LLEN every 2 ms);
- latency: the same number enqueued at half our measured throughput; enqueue-to-start p50/p99;
- Redis commands per task during the throughput phase (INFO total_commands_processed, less
  the benchmark's own RPUSHes and LLEN polls; commands inside Lua scripts count too), and for
  ours the round trips: EVALSHA and BLPOP calls per task (INFO commandstats; neither is ever
  called from a script).

Ours runs from this interpreter; arq from ``benchmarks/.peers/venv`` (``pip install arq``
there; ``bash benchmarks/setup_peers.sh`` creates it), Celery from
``benchmarks/.peers/celery-venv`` (``pip install celery "redis>=6.1"``: arq needs redis-py < 6).
Worker and producer are pinned to different cores when taskset exists. Run:
``python -m benchmarks.tasks [--count 3000] [--only crossway,arq,celery]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks._common import PEERS_BIN, ROOT, free_port, load_average, pinned

OURS = Path(sys.executable)
PEERS = PEERS_BIN / "python"
# Celery's Redis transport needs redis-py >= 6.1, arq < 6: a venv each.
CELERY = PEERS_BIN.parent.parent / "celery-venv" / "bin" / "python"

SYSTEMS: dict[str, tuple[Path, list[str], str]] = {
    # name: (python, worker command after the python, producer module)
    "crossway": (
        OURS,
        [
            *("-m", "consumers.worker", "--tasks", "benchmarks._tasks_crossway:bench"),
            *("--concurrency", "16", "--log-level", "warning"),
        ],
        "benchmarks._tasks_crossway",
    ),
    "arq": (PEERS, ["-m", "arq", "benchmarks._tasks_arq.WorkerSettings"], "benchmarks._tasks_arq"),
    "celery": (
        CELERY,
        [
            *("-m", "celery", "-A", "benchmarks._tasks_celery", "worker", "-P", "threads"),
            *("-c", "16", "--without-gossip", "--without-mingle", "--without-heartbeat"),
            *("-l", "warning"),
        ],
        "benchmarks._tasks_celery",
    ),
}


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own on a free port (no persistence), stopped on the way out."""
    port = free_port()
    directory = tempfile.mkdtemp(prefix="bench-redis-")
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", directory]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while (
            subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout[:4]
            != b"PONG"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def measure(name: str, url: str, count: int, rate: float | None) -> dict[str, Any]:
    """Run one system's worker and producer; the producer's JSON result."""
    python, worker_args, producer = SYSTEMS[name]
    subprocess.run(["redis-cli", "-u", url, "flushall"], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_REDIS": url, "CHANNEL_LAYERS_URL": url}
    worker = subprocess.Popen(
        pinned([python, *worker_args], 0), cwd=ROOT, env=env, start_new_session=True
    )
    try:
        done = subprocess.run(
            pinned([python, "-m", producer, str(count), str(rate or 0)], 1),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{name} producer failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="tasks per phase")
    parser.add_argument("--only", default="crossway,arq,celery", help="systems, comma-separated")
    options = parser.parse_args()
    names = options.only.split(",")
    results: dict[str, dict[str, Any]] = {}
    print(f"load average before: {load_average()}")
    with private_redis() as url:
        ours = measure("crossway", url, options.count, None)
        rate = ours["tasks_per_s"] / 2
        for name in names:
            results[name] = measure(name, url, options.count, rate)
            print(name, json.dumps(results[name]), flush=True)
    print(f"load average after: {load_average()}")
    print(
        f"\n{'system':<10} {'tasks/s':>9} {'enqueue/s':>10} {'cmds/task':>10} "
        f"{'p50 us':>9} {'p99 us':>9}   (latency at {rate:.0f} tasks/s)"
    )
    for name, result in results.items():
        print(
            f"{name:<10} {result['tasks_per_s']:>9.0f} {result['enqueue_per_s']:>10.0f} "
            f"{result['commands_per_task']:>10.1f} {result['latency_p50_us']:>9.0f} "
            f"{result['latency_p99_us']:>9.0f}"
        )
    if "crossway" in results:
        for peer, target in (("arq", 2.0), ("celery", 5.0)):
            if peer in results:
                ratio = results["crossway"]["tasks_per_s"] / results[peer]["tasks_per_s"]
                verdict = "met" if ratio >= target else "NOT met"
                print(f"throughput vs {peer}: {ratio:.2f}x (target {target:.0f}x: {verdict})")
        trips = results["crossway"]["round_trips_per_task"]
        print(f"our Redis round trips per task: {trips:.2f} (target 3)")
        p99 = results["crossway"]["latency_p99_us"] / 1000
        print(f"our p99 enqueue-to-start at half saturation: {p99:.2f} ms (target 2 ms)")


if __name__ == "__main__":
    main()
