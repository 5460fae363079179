"""The static path type: a directory served over HTTP (Crossbar.io's ``static``).

What it does: content types, ETag and Last-Modified with conditional GET/HEAD (304), single byte
ranges (206, 416, If-Range), ``index.html``, an opt-in directory listing (``allow_index``),
precompressed ``.br``/``.gz`` siblings when the client accepts them, Cache-Control. Files stream in
chunks read in the thread pool; each chunk waits for the server's flow control, so a slow reader
holds one chunk in memory, however big the file.

Traversal: the request path is checked segment by segment before anything touches the disk
(``..``, ``.``, backslashes, NUL and encoded slashes are refused), then the resolved path must lie
inside the resolved root (symlinks out of the root are refused unless ``follow_symlinks``). Every
refusal is a 404, so a probe learns nothing about the file system.

Why not servestatic (WhiteNoise's ASGI successor): it has Range and precompressed files but no
directory listing, and it indexes the tree at startup (new files appear only in its ``autorefresh``
development mode, which it advises against in production), while Crossbar's static path serves the
directory as it is now.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import html
import mimetypes
import os
import re
import stat
import urllib.parse
from dataclasses import dataclass

from ..base import Receive, Scope, Send
from ._http import Headers, header, path_below_mount, refuse_websocket, respond

_ENCODED_SEPARATORS = re.compile(rb"%(2f|5c|00)", re.IGNORECASE)
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
#: Precompressed siblings, in order of preference: (suffix, Content-Encoding token).
_ENCODINGS = ((".br", "br"), (".gz", "gzip"))


@dataclass(frozen=True)
class _File:
    path: str
    size: int
    etag: bytes
    last_modified: str
    mtime: float


class StaticFiles:
    """ASGI app serving ``directory``; mount it with ``path("static/", StaticFiles(...))``."""

    #: URLRouter treats this app as a mount point: it serves everything below its prefix.
    _path_routing = True

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        allow_index: bool = False,
        index_file: str | None = "index.html",
        follow_symlinks: bool = False,
        cache_timeout: int | None = None,
        precompressed: bool = True,
        chunk_size: int = 256 * 1024,
    ) -> None:
        self.root = os.path.realpath(directory)
        if not os.path.isdir(self.root):
            raise ValueError(f"static directory {str(directory)!r} does not exist")
        self.allow_index = allow_index
        self.index_file = index_file
        self.follow_symlinks = follow_symlinks
        #: None: browsers revalidate every time (cheap with ETags); N: cache for N seconds.
        self.cache_control = (
            b"no-cache" if cache_timeout is None else b"public, max-age=%d" % cache_timeout
        )
        self.precompressed = precompressed
        self.chunk_size = chunk_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request."""
        if scope["type"] == "websocket":
            await refuse_websocket(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            allow = [(b"allow", b"GET, HEAD")]
            await respond(send, 405, b"Method Not Allowed\n", headers=allow)
            return
        found = self.resolve(scope)
        if found is None:
            await respond(send, 404, b"Not Found\n", head_only=method == "HEAD")
            return
        target, result = found
        if stat.S_ISDIR(result.st_mode):
            await self.directory(scope, send, target)
        else:
            await self.file(scope, send, target, result)

    def resolve(self, scope: Scope) -> tuple[str, os.stat_result] | None:
        """The file or directory a request names and its stat, or None when it is missing or
        refused. Walks down from the root one lstat per component (cheaper than realpath from
        /, and the last one is the file's metadata); only a symlink costs a realpath."""
        raw = scope.get("raw_path") or b""
        if _ENCODED_SEPARATORS.search(raw.split(b"?", 1)[0]):
            return None  # %2f, %5c, %00: a name that hides a separator or a NUL
        relative = path_below_mount(scope)
        parts = relative.split("/")
        for part in parts:
            if part in (".", "..") or "\\" in part or "\x00" in part:
                return None
        path = self.root
        try:
            result = os.stat(path)
        except OSError:
            return None
        for part in parts:
            if part:
                path = path + os.sep + part
                found = self.entry(path)
                if found is None:
                    return None
                result = found
        return path, result

    def entry(self, path: str) -> os.stat_result | None:
        """The stat of ``path``, whose parent is known to be inside the root; None when it is
        missing or a symlink that leaves the root (unless ``follow_symlinks``)."""
        try:
            result = os.lstat(path)
            if not stat.S_ISLNK(result.st_mode):
                return result
            if not self.follow_symlinks:
                real = os.path.realpath(path, strict=True)
                if real != self.root and not real.startswith(self.root + os.sep):
                    return None
            return os.stat(path)
        except OSError:
            return None

    async def directory(self, scope: Scope, send: Send, target: str) -> None:
        """A directory: redirect to the slash form, then index.html, a listing, or 404."""
        head_only = scope["method"] == "HEAD"
        request_path: str = scope.get("path", "/")
        if not request_path.endswith("/"):
            location = urllib.parse.quote(request_path + "/")
            query = scope.get("query_string", b"")
            headers = [(b"location", location.encode() + (b"?" + query if query else b""))]
            await respond(send, 301, b"", headers=headers)
            return
        if self.index_file:
            index = os.path.join(target, self.index_file)
            result = self.entry(index)
            if result is not None and stat.S_ISREG(result.st_mode):
                await self.file(scope, send, index, result)
                return
        if not self.allow_index:
            await respond(send, 404, b"Not Found\n", head_only=head_only)
            return
        body = self.listing(request_path, target)
        content_type = b"text/html; charset=utf-8"
        await respond(send, 200, body, content_type, [(b"cache-control", b"no-cache")], head_only)

    def listing(self, request_path: str, target: str) -> bytes:
        """An HTML page listing the entries of ``target`` (names escaped; links quoted)."""
        title = html.escape(request_path)
        rows = ['<li><a href="../">../</a></li>'] if request_path != "/" else []
        for entry in sorted(os.scandir(target), key=lambda e: e.name):
            if self.entry(entry.path) is None:
                continue
            name = entry.name + ("/" if entry.is_dir() else "")
            href = urllib.parse.quote(name)
            rows.append(f'<li><a href="{href}">{html.escape(name)}</a></li>')
        page = (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Index of {title}</title>"
            f"</head><body><h1>Index of {title}</h1><ul>{''.join(rows)}</ul></body></html>\n"
        )
        return page.encode()

    async def file(self, scope: Scope, send: Send, path: str, result: os.stat_result) -> None:
        """A regular file: conditional answers, a range, or the whole (maybe precompressed)."""
        found = _file(path, result)
        if found is None:
            await respond(send, 404, b"Not Found\n", head_only=scope["method"] == "HEAD")
            return
        headers = self._headers(path, found)
        if _not_modified(scope, found):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        requested = header(scope, b"range")
        if requested is not None and _if_range_holds(scope, found):
            await self._ranged(scope, send, found, headers, requested.decode("latin-1"))
            return
        served, encoding = self._variant(scope, found)
        if encoding:
            headers.append((b"content-encoding", encoding.encode()))
            headers = [(k, v) for k, v in headers if k != b"etag"]
            headers.append((b"etag", found.etag[:-1] + b"-" + encoding.encode() + b'"'))
        headers.append((b"content-length", b"%d" % served.size))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await self._stream(scope, send, served.path, 0, served.size)

    def _headers(self, path: str, found: _File) -> Headers:
        headers = [
            (b"content-type", _content_type(os.path.splitext(path)[1].lower())),
            (b"etag", found.etag),
            (b"last-modified", found.last_modified.encode()),
            (b"cache-control", self.cache_control),
            (b"accept-ranges", b"bytes"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if self.precompressed:
            headers.append((b"vary", b"Accept-Encoding"))
        return headers

    def _variant(self, scope: Scope, found: _File) -> tuple[_File, str | None]:
        """The precompressed sibling the client accepts (and that is not older), if any."""
        if not self.precompressed:
            return found, None
        accepted = (header(scope, b"accept-encoding") or b"").decode("latin-1").lower()
        tokens = {token.split(";")[0].strip() for token in accepted.split(",")}
        for suffix, encoding in _ENCODINGS:
            if encoding in tokens:
                sibling_path = found.path + suffix
                result = self.entry(sibling_path)
                if result is not None and result.st_mtime >= found.mtime:
                    sibling = _file(sibling_path, result)
                    if sibling is not None:
                        return sibling, encoding
        return found, None

    async def _ranged(
        self, scope: Scope, send: Send, found: _File, headers: Headers, requested: str
    ) -> None:
        span = _parse_range(requested, found.size)
        if span is None:  # several ranges or a malformed header: RFC 9110 lets us send it all
            headers.append((b"content-length", b"%d" % found.size))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await self._stream(scope, send, found.path, 0, found.size)
            return
        start, end = span
        if start >= found.size or start > end:
            unsatisfied = [(b"content-range", b"bytes */%d" % found.size)]
            await respond(send, 416, b"Range Not Satisfiable\n", headers=unsatisfied)
            return
        headers.append((b"content-range", b"bytes %d-%d/%d" % (start, end, found.size)))
        headers.append((b"content-length", b"%d" % (end - start + 1)))
        await send({"type": "http.response.start", "status": 206, "headers": headers})
        await self._stream(scope, send, found.path, start, end - start + 1)

    async def _stream(self, scope: Scope, send: Send, path: str, offset: int, length: int) -> None:
        """Send ``length`` bytes from ``offset``, one chunk at a time; ``await send`` holds the
        next read until the client has taken this one (one chunk in memory per client)."""
        if scope["method"] == "HEAD" or length == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        descriptor = os.open(path, os.O_RDONLY)  # opening is metadata, not a read
        try:
            while length > 0:
                chunk = await _read(descriptor, min(self.chunk_size, length), offset)
                if not chunk:
                    raise RuntimeError(f"{path} became shorter while it was being sent")
                offset += len(chunk)
                length -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": length > 0})
        finally:
            os.close(descriptor)


#: Linux's preadv2(RWF_NOWAIT): read what the page cache holds without blocking.
_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None) if hasattr(os, "preadv") else None


async def _read(descriptor: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset``: in the event loop when the page cache holds them (a
    thread hop costs more than copying cached data), else in the thread pool (a cold read may
    wait for the disk). Whether the chunk is cached is probed at its first and last byte with
    RWF_NOWAIT, which reads only cached data: one-byte probes, then a single-copy pread."""
    if _NOWAIT is not None:
        probe = bytearray(1)
        try:
            cached = (
                os.preadv(descriptor, [probe], offset + size - 1, _NOWAIT) == 1
                and os.preadv(descriptor, [probe], offset, _NOWAIT) == 1
            )
        except OSError:  # EAGAIN: not cached; EOPNOTSUPP: this file system cannot say
            cached = False
        if cached:
            return os.pread(descriptor, size, offset)
    return await asyncio.to_thread(os.pread, descriptor, size, offset)


def _file(path: str, result: os.stat_result | None) -> _File | None:
    if result is None or not stat.S_ISREG(result.st_mode):
        return None
    etag = b'"%x-%x"' % (result.st_mtime_ns, result.st_size)
    modified = _http_date(int(result.st_mtime))
    return _File(path, result.st_size, etag, modified, result.st_mtime)


@functools.lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


@functools.lru_cache(maxsize=1024)
def _content_type(suffix: str) -> bytes:
    """The Content-Type of a file name suffix (text gets charset=utf-8)."""
    content_type, _ = mimetypes.guess_type("x" + suffix)
    content_type = content_type or "application/octet-stream"
    if content_type.startswith("text/") or content_type == "application/javascript":
        content_type += "; charset=utf-8"
    return content_type.encode()


def _not_modified(scope: Scope, found: _File) -> bool:
    """RFC 9110 §13.1.2/§13.1.3: If-None-Match wins over If-Modified-Since."""
    if_none_match = header(scope, b"if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b",")}
        return b"*" in tags or found.etag in tags or _encoded_etag_in(found.etag, tags)
    since = header(scope, b"if-modified-since")
    if since is None:
        return False
    try:
        when = email.utils.parsedate_to_datetime(since.decode("latin-1")).timestamp()
    except (TypeError, ValueError):
        return False
    return int(found.mtime) <= when


def _encoded_etag_in(etag: bytes, tags: set[bytes]) -> bool:
    """Whether a tag names a precompressed variant of this file (same file, other encoding)."""
    return any(tag.startswith(etag[:-1] + b"-") for tag in tags)


def _if_range_holds(scope: Scope, found: _File) -> bool:
    """RFC 9110 §13.1.5: a Range applies only while the validator in If-Range still matches."""
    validator = header(scope, b"if-range")
    if validator is None:
        return True
    if validator.startswith(b'"'):
        return validator == found.etag
    return validator.decode("latin-1") == found.last_modified


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as (first, last), clipped to the file; None for several or junk."""
    match = _RANGE.fullmatch(value.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        count = int(last)
        return (max(size - count, 0), size - 1) if count else (size, size)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # RFC 9110 §14.1.1: an invalid range is ignored, not unsatisfiable
    return start, min(end, size - 1)
