"""The HTTP benchmark's own parts: the app every server runs, server start/stop, the summaries.

These start our real server (not the peers, which live in a venv CI does not build) and, when
wrk is installed, run the whole benchmark script for a second against it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

# benchmarks/ is not an installed package: import it from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import _common, _profile
from benchmarks import http as http_benchmark


@pytest.mark.parametrize("parser", ["h11", "httptools"])
def test_benchmark_app_on_our_server(parser: str) -> None:
    """GET answers hello; POST answers the length of the whole body it read."""
    port = _common.free_port()
    command = http_benchmark.SERVERS[f"ours-{parser}"](port, 1)
    with _common.start_server(f"test-ours-{parser}", command, port) as server:
        base = f"http://{_common.HOST}:{port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            hello = client.get("/")
            upload = client.post("/", content=b"x" * (3 * 1024 * 1024 + 7))
        assert (hello.status_code, hello.content) == (200, b"Hello, world!")
        assert (upload.status_code, upload.content) == (200, b"3145735")
    assert server.process.poll() is not None  # stopped when the block ended
    with pytest.raises(ProcessLookupError):
        os.killpg(server.process.pid, 0)  # and no process of its group is left


def test_start_server_reports_a_server_that_exits() -> None:
    """A server that dies at startup raises ServerFailed carrying the end of its log."""
    port = _common.free_port()
    command = [sys.executable, "-c", "import sys; sys.exit('no such app, try module:attr')"]
    with (
        pytest.raises(_common.ServerFailed, match="no such app, try module:attr"),
        _common.start_server("test-broken", command, port),
    ):
        pass


def test_group_cpu_seconds_counts_a_busy_process() -> None:
    """CPU time of a process group grows while one of its processes spins."""
    spin = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
         "while time.process_time() < end: pass\nimport sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = 10.0
        while _common.group_cpu_seconds(spin.pid) < 0.25 and deadline > 0:
            subprocess.run(["sleep", "0.05"], check=True)
            deadline -= 0.05
        assert _common.group_cpu_seconds(spin.pid) >= 0.25
    finally:
        os.killpg(spin.pid, signal.SIGKILL)
        spin.wait()


def test_profile_summary_charges_shares_of_the_cpu_per_request(tmp_path: Path) -> None:
    """Each function gets its share of the samples times the measured CPU per request."""
    stacks = tmp_path / "stacks.txt"
    stacks.write_text(
        "main (a/cli.py);run (asgi_server/x.py);parse (asgi_server/p.py) 30\n"
        "main (a/cli.py);run (asgi_server/x.py) 10\n"
        "main (a/cli.py);write (asgi_server/w.py) 60\n"
    )
    lines = _profile.summarize(stacks, cpu_us_per_request=50.0, package="asgi_server/")
    assert lines[0] == "100 samples over 50.0 us of CPU per request"
    self_part = lines[2:5]
    assert self_part[0].split() == ["30.00", "(", "60.0%)", "write", "(asgi_server/w.py)"]
    assert self_part[1].split()[0] == "15.00"  # parse: 30 of 100 samples
    inclusive = lines[
        lines.index("top inclusive time in asgi_server/, us/request (share of samples):") + 1 :
    ]
    assert [line.split()[0] for line in inclusive] == ["30.00", "20.00", "15.00"]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_http_benchmark_runs_against_our_server(capsys: pytest.CaptureFixture[str]) -> None:
    """One short round against ours: a table row with a rate, and the raw results saved."""
    http_benchmark.main(
        ["--only", "ours-httptools", "--duration", "1", "--rounds", "1", "--scenarios", "keepalive"]
    )
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("ours-httptools "))
    assert float(row.split()[1]) > 0  # req/s
    saved = Path(out.rsplit("raw results: ", 1)[1].strip())
    record = json.loads(saved.read_text())
    assert [run["server"] for run in record["runs"]] == ["ours-httptools"]
    assert record["runs"][0]["errors"] == 0
    saved.unlink()


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.parametrize("mode", ["close", "keepalive"])
def test_callgrind_harness_counts_the_server_s_instructions_per_request(mode: str) -> None:
    """The A/B measure runs our server under callgrind and divides by the requests it made:
    a request of ours is tens of thousands of instructions, far from zero or the startup's
    hundreds of millions (which collection, switched on after it, must leave out)."""
    from benchmarks import callgrind_http

    per_request = callgrind_http.measure(_common.ROOT, mode, requests=40, connections=2, warmup=4)
    assert 10_000 < per_request < 2_000_000


@pytest.mark.skipif(shutil.which("cc") is None, reason="mypyc needs a C compiler")
def test_mypyc_copy_compiles_the_http_hot_path_and_serves() -> None:
    """``--mypyc`` builds a copy whose hot-path modules are extensions, and that copy serves."""
    from benchmarks import callgrind_http

    tree = callgrind_http.compiled_copy(_common.ROOT)
    try:
        probe = (
            "import importlib, sys\n"
            "for path in sys.argv[1:]:\n"
            "    module = importlib.import_module(path[:-3].replace('/', '.'))\n"
            "    assert module.__file__.endswith('.so'), module.__file__\n"
        )
        env = {**os.environ, "PYTHONPATH": str(tree)}
        python = str(_common.OURS_BIN / "python")
        subprocess.run(
            [python, "-c", probe, *callgrind_http.HOT_PATH], env=env, cwd=tree, check=True
        )
        port = _common.free_port()
        command = [python, "-m", "asgi_server", "benchmarks.apps:app", "--port", str(port)]
        command += ["--http", "httptools", "--loop", "uvloop", "--log-level", "warning"]
        server = subprocess.Popen(command, env=env, cwd=tree)
        try:
            callgrind_http._wait_ready(port, timeout=30)
            assert httpx.get(f"http://{_common.HOST}:{port}/").text == "Hello, world!"
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(tree)
