"""The static path type on the real server: headers, statuses, ranges, listing, traversal."""

from __future__ import annotations

import gzip
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from consumers.routing import URLRouter, path
from consumers.web import StaticFiles

BODY = b"0123456789" * 100  # 1000 bytes


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A root with a page, a text file, a subdirectory, a secret beside the root, a symlink out."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "data.txt").write_bytes(BODY)
    (root / "app.js").write_text("console.log(1)")
    (root / "sub" / "a b&<c>.txt").write_text("spaces")
    (root / "docs").mkdir()
    (root / "docs" / "note.md").write_text("# note")
    (tmp_path / "secret.txt").write_text("SECRET")
    (root / "link-out.txt").symlink_to(tmp_path / "secret.txt")
    (root / "link-in.txt").symlink_to(root / "data.txt")
    return root


@pytest.fixture
def serve(
    run_server: Callable[..., Any],
) -> Iterator[Callable[[Any], httpx.Client]]:
    """``serve(app)`` runs ``app`` on the real server and returns an httpx client for it."""
    stack: list[Any] = []

    def start(app: Any) -> httpx.Client:
        manager = run_server(app)
        server = manager.__enter__()
        stack.append(manager)
        client = httpx.Client(base_url=server.url, timeout=10)
        stack.append(client)
        return client

    yield start
    for item in reversed(stack):
        item.__exit__(None, None, None)


def raw_get(client: httpx.Client, target: bytes) -> bytes:
    """Send ``GET target`` byte for byte (no client normalisation) and return the answer."""
    url = httpx.URL(str(client.base_url))
    with socket.create_connection((url.host, url.port or 80), timeout=5) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_file_headers_and_head(site: Path, serve: Callable[[Any], httpx.Client]) -> None:
    client = serve(StaticFiles(site))
    response = client.get("/data.txt")
    assert response.status_code == 200
    assert response.content == BODY
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "1000"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"].startswith('"')
    assert response.headers["last-modified"].endswith("GMT")
    assert "javascript" in client.get("/app.js").headers["content-type"]
    head = client.head("/data.txt")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "1000"
    assert client.post("/data.txt").status_code == 405
    assert client.get("/missing.txt").status_code == 404


def test_index_redirect_and_cache_timeout(site: Path, serve: Callable[[Any], httpx.Client]) -> None:
    client = serve(StaticFiles(site, cache_timeout=600))
    assert client.get("/").text == "<h1>home</h1>"
    assert client.get("/").headers["cache-control"] == "public, max-age=600"
    redirect = client.get("/sub?x=1")
    assert redirect.status_code == 301 and redirect.headers["location"] == "/sub/?x=1"
    assert client.get("/sub/").status_code == 404  # no index.html, listing not allowed


def test_conditional_requests(site: Path, serve: Callable[[Any], httpx.Client]) -> None:
    client = serve(StaticFiles(site))
    first = client.get("/data.txt")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert client.get("/data.txt", headers={"if-none-match": etag}).status_code == 304
    assert client.head("/data.txt", headers={"if-none-match": etag}).status_code == 304
    assert client.get("/data.txt", headers={"if-none-match": '"x", ' + etag}).status_code == 304
    assert client.get("/data.txt", headers={"if-none-match": '"other"'}).status_code == 200
    assert client.get("/data.txt", headers={"if-modified-since": modified}).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get("/data.txt", headers={"if-modified-since": old}).status_code == 200
    os.utime(site / "data.txt", (2_000_000_000, 2_000_000_000))  # the file changed
    assert client.get("/data.txt", headers={"if-none-match": etag}).status_code == 200


@pytest.mark.parametrize(
    ("header", "status", "expected", "content_range"),
    [
        ("bytes=0-9", 206, BODY[:10], "bytes 0-9/1000"),
        ("bytes=990-", 206, BODY[990:], "bytes 990-999/1000"),
        ("bytes=-5", 206, BODY[-5:], "bytes 995-999/1000"),
        ("bytes=995-5000", 206, BODY[995:], "bytes 995-999/1000"),
        ("bytes=1000-", 416, None, "bytes */1000"),
        ("bytes=-0", 416, None, "bytes */1000"),
        ("bytes=0-1,5-6", 200, BODY, None),  # several ranges: the whole file, as RFC 9110 allows
        ("bytes=9-3", 200, BODY, None),  # invalid: ignored
        ("lines=1-2", 200, BODY, None),
    ],
)
def test_ranges(
    site: Path,
    serve: Callable[[Any], httpx.Client],
    header: str,
    status: int,
    expected: bytes | None,
    content_range: str | None,
) -> None:
    client = serve(StaticFiles(site))
    response = client.get("/data.txt", headers={"range": header})
    assert response.status_code == status
    assert response.headers.get("content-range") == content_range
    if expected is not None:
        assert response.content == expected
        assert response.headers["content-length"] == str(len(expected))


def test_if_range(site: Path, serve: Callable[[Any], httpx.Client]) -> None:
    client = serve(StaticFiles(site))
    etag = client.get("/data.txt").headers["etag"]
    same = client.get("/data.txt", headers={"range": "bytes=0-1", "if-range": etag})
    assert same.status_code == 206 and same.content == b"01"
    stale = client.get("/data.txt", headers={"range": "bytes=0-1", "if-range": '"old"'})
    assert stale.status_code == 200 and stale.content == BODY


def test_precompressed_siblings(site: Path, serve: Callable[[Any], httpx.Client]) -> None:
    (site / "data.txt.gz").write_bytes(gzip.compress(BODY))
    (site / "data.txt.br").write_bytes(b"not really brotli")
    client = serve(StaticFiles(site))
    gz = client.get("/data.txt", headers={"accept-encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip" and gz.content == BODY  # httpx inflates
    assert gz.headers["content-type"] == "text/plain; charset=utf-8"
    assert gz.headers["vary"] == "Accept-Encoding"
    br = client.get("/data.txt", headers={"accept-encoding": "gzip, br"})
    assert br.headers["content-encoding"] == "br"
    assert br.headers["etag"] != client.get("/data.txt").headers["etag"]
    plain = client.get("/data.txt", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == BODY
    again = client.get("/data.txt", headers={"if-none-match": br.headers["etag"]})
    assert again.status_code == 304


def test_listing_is_opt_in_and_escaped(site: Path, serve: Callable[[Any], httpx.Client]) -> None:
    client = serve(URLRouter([path("files/", StaticFiles(site, allow_index=True))]))
    page = client.get("/files/sub/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'href="a%20b%26%3Cc%3E.txt"' in page.text and "a b&amp;&lt;c&gt;.txt" in page.text
    docs = client.get("/files/docs/").text
    assert "note.md" in docs and "../" in docs
    root = client.get("/files/")  # index.html wins over the listing
    assert root.text == "<h1>home</h1>"
    listing = StaticFiles(site, allow_index=True).listing("/", str(site)).decode()
    assert "link-out.txt" not in listing and "link-in.txt" in listing
    assert client.get("/files/sub/a%20b%26%3Cc%3E.txt").text == "spaces"


@pytest.mark.parametrize(
    "target",
    [
        b"/../secret.txt",
        b"/sub/../../secret.txt",
        b"/%2e%2e/secret.txt",
        b"/%2E%2E/secret.txt",
        b"/sub/%2e%2e/%2e%2e/secret.txt",
        b"/..%2fsecret.txt",
        b"/%2e%2e%2fsecret.txt",
        b"/sub%2f..%2f..%2fsecret.txt",
        b"/..\\secret.txt",
        b"/%5c..%5csecret.txt",
        b"/data.txt%00.png",
        b"/link-out.txt",
        b"/./data.txt",
    ],
)
def test_traversal_is_404(site: Path, serve: Callable[[Any], httpx.Client], target: bytes) -> None:
    client = serve(StaticFiles(site))
    answer = raw_get(client, target)
    assert answer.startswith((b"HTTP/1.1 404", b"HTTP/1.1 400")), answer[:100]
    assert b"SECRET" not in answer


def test_symlinks(site: Path, serve: Callable[[Any], httpx.Client]) -> None:
    client = serve(StaticFiles(site))
    assert client.get("/link-in.txt").content == BODY  # inside the root: fine
    assert client.get("/link-out.txt").status_code == 404
    allowed = serve(StaticFiles(site, follow_symlinks=True))
    assert allowed.get("/link-out.txt").text == "SECRET"


def test_mounted_below_a_prefix(site: Path, serve: Callable[[Any], httpx.Client]) -> None:
    client = serve(URLRouter([path("static/", StaticFiles(site))]))
    assert client.get("/static/data.txt").content == BODY
    assert client.get("/static/docs").headers["location"] == "/static/docs/"
    assert client.get("/data.txt").status_code == 404


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        StaticFiles(tmp_path / "nope")


async def test_reads_are_right_whether_cached_or_not(tmp_path: Path) -> None:
    from consumers.web.static import _read

    data = os.urandom(3 << 20)
    target = tmp_path / "cold.bin"
    target.write_bytes(data)
    descriptor = os.open(target, os.O_RDONLY)
    try:
        os.fsync(descriptor)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)  # evict it, where possible
        cold = [await _read(descriptor, 1 << 20, offset) for offset in (0, 1 << 20, 2 << 20)]
        warm = await _read(descriptor, 1000, 12345)  # now in the page cache
    finally:
        os.close(descriptor)
    assert b"".join(cold) == data and warm == data[12345:13345]
