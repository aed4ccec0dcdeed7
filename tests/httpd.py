"""A small local HTTP server for offline download tests.

Usage::

    from httpd import FileServer

    with FileServer() as server:
        url = server.add("/data.zip", payload)                 # plain file, Range supported
        url = server.add("/flaky.zip", payload, drop_after=1000)  # first response dies after 1000 bytes
        ...
        server.requests_for("/flaky.zip")[1].range  # -> "bytes=1000-"

It binds 127.0.0.1 on a free port, serves in-memory files from a daemon thread, and
records every request (path, Range header, status, bytes of body sent).
"""

from __future__ import annotations

import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FileServer", "Request", "Route", "closed_port"]


@dataclass
class Route:
    """One file on the server and how to misbehave when serving it.

    body: the file's true content (Content-Length / Content-Range always describe it).
    drop_after: on the FIRST request only, close the connection after this many body bytes.
    truncate_at: on EVERY request, stop sending at this absolute offset of the file and close
        (the headers still announce the full length): the file can never be completed.
    corrupt: send different bytes of the same length (for checksum mismatches).
    ignore_range: answer every request with 200 and the whole file (no resume support).
    fail_first: answer the first N requests with ``fail_status`` (e.g. 503) before behaving.
    status: answer every request with this status and a short text body (e.g. 404, 500).
    """

    body: bytes
    drop_after: int | None = None
    truncate_at: int | None = None
    corrupt: bool = False
    ignore_range: bool = False
    fail_first: int = 0
    fail_status: int = 503
    status: int | None = None
    hits: int = 0


@dataclass
class Request:
    """What the server saw and did for one request."""

    path: str
    method: str
    range: str | None
    status: int
    sent: int = 0  # body bytes actually written


@dataclass
class _State:
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _flip(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in data[:1]) + data[1:] if data else b"x"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _State  # set on the subclass made per server

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _record(self, status: int, rng: str | None) -> Request:
        record = Request(self.path, self.command, rng, status)
        with self.state.lock:
            self.state.requests.append(record)
        return record

    def _simple(self, status: int, rng: str | None, text: bytes, extra: dict[str, str] | None = None) -> None:
        record = self._record(status, rng)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(text)
            record.sent = len(text)

    def _serve(self, head: bool) -> None:
        rng = self.headers.get("Range")
        path = self.path.split("?", 1)[0]
        with self.state.lock:
            route = self.state.routes.get(path)
            hit = route.hits if route else 0
            if route:
                route.hits += 1
        if route is None:
            self._simple(404, rng, b"not found")
            return
        if route.status is not None:
            self._simple(route.status, rng, b"error")
            return
        if hit < route.fail_first:
            self._simple(route.fail_status, rng, b"try again later")
            return

        data = _flip(route.body) if route.corrupt else route.body
        size = len(data)
        start = 0
        status = 200
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if match and not route.ignore_range:
            start = int(match.group(1))
            if start >= size:
                self._simple(416, rng, b"", {"Content-Range": f"bytes */{size}"})
                return
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            data = data[start : end + 1]
            status = 206

        record = self._record(status, rng)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "none" if route.ignore_range else "bytes")
        self.send_header("Content-Length", str(len(data)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{start + len(data) - 1}/{size}")
        self.end_headers()
        if head:
            return

        limit = len(data)
        if route.drop_after is not None and hit == 0:
            limit = min(limit, route.drop_after)
        if route.truncate_at is not None:
            limit = min(limit, max(0, route.truncate_at - start))
        if limit < len(data):
            self.wfile.write(data[:limit])
            self.wfile.flush()
            record.sent = limit
            self.close_connection = True  # the client sees fewer bytes than Content-Length
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        self.wfile.write(data)
        record.sent = len(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up (the stall and retry tests make clients time out) is expected:
        no traceback in the test log. Any other handler error still prints one."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, socket.timeout)):
            return
        super().handle_error(request, client_address)


class FileServer:
    """A threaded HTTP server on 127.0.0.1 (free port) serving in-memory :class:`Route` s."""

    def __init__(self) -> None:
        self.state = _State()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def url(self, path: str) -> str:
        return self.base_url + path.lstrip("/")

    def add(self, path: str, body: bytes, **options: object) -> str:
        """Serve ``body`` at ``path`` (see :class:`Route` for ``options``); return its URL."""
        path = "/" + path.lstrip("/")
        with self.state.lock:
            self.state.routes[path] = Route(body, **options)  # type: ignore[arg-type]
        return self.url(path)

    @property
    def requests(self) -> list[Request]:
        with self.state.lock:
            return list(self.state.requests)

    def requests_for(self, path: str) -> list[Request]:
        path = "/" + path.lstrip("/")
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def start(self) -> "FileServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FileServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def closed_port() -> int:
    """A local port with nothing listening (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
