"""A local HTTP server on 127.0.0.1 for remote-reading tests and benchmarks.

It serves files with HTTP Range support and counts requests and body bytes; ``mode`` makes it
misbehave (404, 416, ignore Range, close early, stall). It also plays a minimal Hugging Face Hub:
``/api/models/{owner}/{repo}/tree/{rev}?recursive=true`` (paginated with a ``Link`` header) and
``/{owner}/{repo}/resolve/{rev}/{path}`` (a 302 redirect to a CDN-like path, as the Hub does),
optionally requiring ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["FakeServer", "serve"]


@dataclass
class FakeServer:
    files: dict[str, bytes] = field(default_factory=dict)  # url path ("/x/model.gguf") -> content
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)  # "owner/repo" -> {path: content}
    mode: str = "ok"  # ok | 404 | 416 | no-range | no-content-range | close-early | stall | 500
    token: str | None = None  # Hub token required for repos when set
    page_size: int = 1000
    requests: int = 0
    range_requests: int = 0
    body_bytes: int = 0
    paths: list[str] = field(default_factory=list)
    auth_headers: list[str | None] = field(default_factory=list)
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_file(self, url_path: str, path_or_bytes: Path | bytes) -> str:
        data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
        self.files[url_path] = data
        return self.base_url + url_path

    def reset_counts(self) -> None:
        with self.lock:
            self.requests = self.range_requests = self.body_bytes = 0
            self.paths.clear()
            self.auth_headers.clear()


def _handler(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # silence
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with state.lock:
                state.body_bytes += len(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            with state.lock:
                state.requests += 1
                state.paths.append(self.path)
                state.auth_headers.append(self.headers.get("Authorization"))
            m = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)$", path)
            if m:
                return self._tree(m.group(1), url.query)
            m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if m:
                repo, rev, file = m.groups()
                if not self._authorized(repo):
                    return self._send(401, b'{"error":"unauthorized"}')
                if file not in state.repos.get(repo, {}):
                    return self._send(404, b'{"error":"Entry not found"}')
                return self._send(302, b"", {"Location": f"/cdn/{repo}/{rev}/{file}"})
            m = re.match(r"^/cdn/([^/]+/[^/]+)/([^/]+)/(.+)$", path)
            data = state.repos.get(m.group(1), {}).get(m.group(3)) if m else state.files.get(path)
            if data is None:
                return self._send(404, b"not found")
            self._serve(data)

        def _authorized(self, repo: str) -> bool:
            return state.token is None or self.headers.get("Authorization") == f"Bearer {state.token}"

        def _tree(self, repo: str, query: str) -> None:
            if repo not in state.repos:
                return self._send(404, b'{"error":"Repository not found"}')
            if not self._authorized(repo):
                return self._send(401, b'{"error":"unauthorized"}')
            entries = [
                {"type": "file", "path": p, "size": len(d), "oid": "0" * 40} for p, d in state.repos[repo].items()
            ]
            dirs = sorted({p.rsplit("/", 1)[0] for p in state.repos[repo] if "/" in p})
            entries += [{"type": "directory", "path": d, "size": 0, "oid": "0" * 40} for d in dirs]
            cursor = int(dict(q.split("=", 1) for q in query.split("&") if "=" in q).get("cursor", "0"))
            page = entries[cursor : cursor + state.page_size]
            headers = {"Content-Type": "application/json"}
            if cursor + state.page_size < len(entries):
                nxt = f"{state.base_url}{urlsplit(self.path).path}?recursive=true&cursor={cursor + state.page_size}"
                headers["Link"] = f'<{nxt}>; rel="next"'
            self._send(200, json.dumps(page).encode(), headers)

        def _serve(self, data: bytes) -> None:
            mode = state.mode
            if mode == "404":
                return self._send(404, b"not found")
            if mode == "500":
                return self._send(500, b"boom")
            rng = self.headers.get("Range")
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
            if m is None or mode == "no-range":
                return self._send(200, data)
            with state.lock:
                state.range_requests += 1
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            if mode == "416" or start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            body = data[start : end + 1]
            if mode == "stall":
                time.sleep(3)
            self.send_response(206)
            if mode != "no-content-range":
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "close-early":
                body = body[: len(body) // 2]
                self.close_connection = True
            self.wfile.write(body)
            with state.lock:
                state.body_bytes += len(body)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-body (timeouts, close-early) are expected here


@contextmanager
def serve(state: FakeServer | None = None) -> Iterator[FakeServer]:
    """Run a FakeServer on 127.0.0.1 (a free port) for the duration of the block."""
    state = state or FakeServer()
    server = _QuietServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
