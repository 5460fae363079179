"""A 1 GiB sparse file to a slow reader: the server's memory stays flat (subprocess server)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

GIB = 1 << 30


def rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_one_gib_to_a_slow_reader_with_flat_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_server_process: Callable[..., Any]
) -> None:
    with open(tmp_path / "big.bin", "wb") as handle:
        handle.truncate(GIB)  # sparse: no disk used
    monkeypatch.setenv("STATIC_ROOT", str(tmp_path))
    with run_server_process("tests.web.apps:static_app") as server:
        pid = server.process.pid
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", server.port))
            baseline = rss_bytes(pid)
            sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            head, _, body_start = head.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert b"content-length: 1073741824" in head.lower()
            received = len(body_start)
            peak = baseline
            deadline = time.monotonic() + 2  # slow: 64 KiB every 10 ms for two seconds
            while time.monotonic() < deadline:
                received += len(sock.recv(64 * 1024))
                peak = max(peak, rss_bytes(pid))
                time.sleep(0.01)
            assert received < 64 * 1024 * 1024  # it really was slow
            buffer = bytearray(1 << 20)
            count = 0
            while received < GIB:  # then fast, sampling memory as we go
                got = sock.recv_into(buffer)
                assert got, f"the server closed after {received} bytes"
                received += got
                count += 1
                if count % 64 == 0:
                    peak = max(peak, rss_bytes(pid))
        assert received == GIB
        growth = peak - baseline
        print(f"server RSS {baseline / 2**20:.1f} MiB, peak growth {growth / 2**20:.1f} MiB")
        assert growth < 48 * 1024 * 1024, f"memory grew by {growth / 2**20:.1f} MiB"
