"""A minimal Hugging Face Hub on 127.0.0.1 with the three calls llama.cpp's downloader makes.

* ``GET /api/models/{owner}/{repo}/refs`` -> branches with their commit;
* ``GET /api/models/{owner}/{repo}/tree/{commit}?recursive=true`` -> files with their LFS sha256;
* ``HEAD|GET /{owner}/{repo}/resolve/{commit}/{path}`` -> the bytes (ETag, Range).

Source of the protocol: common/hf-cache.cpp and common/download.cpp of llama.cpp (the commit
vendored by llama-cpp-python 0.3.36).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Hub:
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)  # "owner/repo" -> {path: bytes}
    requests: list[str] = field(default_factory=list)
    base_url: str = ""


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, *, head: bool = False) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _route(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(f"{self.command} {path}")
            if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/refs", path):
                if m.group(1) not in hub.repos:
                    return self._send(404, b'{"error": "Repository not found"}', head=head)
                body = json.dumps({"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": COMMIT}]})
                return self._send(200, body.encode(), {"Content-Type": "application/json"}, head=head)
            if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([0-9a-f]{40})", path):
                files = hub.repos.get(m.group(1), {})
                tree = [
                    {
                        "type": "file",
                        "path": name,
                        "size": len(data),
                        "oid": hashlib.sha1(data).hexdigest(),
                        "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data)},
                    }
                    for name, data in files.items()
                ]
                return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, head=head)
            if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([0-9a-f]{40})/(.+)", path):
                data = hub.repos.get(m.group(1), {}).get(m.group(3))
                if data is None:
                    return self._send(404, b"not found", head=head)
                headers = {
                    "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                    "Accept-Ranges": "bytes",
                    "Content-Type": "application/octet-stream",
                }
                rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if rng:
                    start = int(rng.group(1))
                    end = int(rng.group(2)) if rng.group(2) else len(data) - 1
                    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                    return self._send(206, data[start : end + 1], headers, head=head)
                return self._send(200, data, headers, head=head)
            return self._send(404, b"not found", head=head)

        def do_GET(self) -> None:
            self._route(head=False)

        def do_HEAD(self) -> None:
            self._route(head=True)

    return Handler


@contextmanager
def serve_hub(hub: Hub) -> Iterator[Hub]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.base_url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
