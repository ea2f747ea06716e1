"""Byte sources for GGUF headers: local files, split sets, HTTP(S) Range reads, Hugging Face.

A model source is written as one of::

    model.gguf                               a local file
    model-00001-of-00003.gguf                a split model (every part is read)
    https://host/path/model.gguf             an HTTP(S) URL, read with Range requests
    hf://owner/repo/path/model.gguf          a file of a Hugging Face repository (``@rev`` after the repo)
    owner/repo:Q4_K_M                        the same shorthand as ``llama-server -hf``

``resolve_source`` turns the text into the list of parts to read; ``open_part`` opens one part as a
:class:`ByteSource`. Remote reads fetch only what the header needs, in growing chunks; the Hub
honours ``HF_TOKEN`` and ``HF_ENDPOINT``. Every failure is a :class:`SourceError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx

from servefit.errors import MissingSplitError, RemoteError, SourceError

__all__ = [
    "ByteSource",
    "BytesSource",
    "HttpSource",
    "LocalSource",
    "ResolvedSource",
    "hub_endpoint",
    "looks_like_gguf_source",
    "open_part",
    "resolve_source",
    "split_parts",
]

# First Range request, then each next one CHUNK_GROWTH times larger: a header of H bytes takes
# ceil(log4(3H/FIRST + 1)) requests and at most H + one chunk bytes (up to 5 MiB of header in 2
# requests, 21 MiB in 3, 85 MiB in 4; real headers are mostly the tokenizer, 1-20 MB).
FIRST_CHUNK_BYTES = 1024 * 1024
CHUNK_GROWTH = 4
MAX_CHUNK_BYTES = 256 * 1024 * 1024
MAX_REMOTE_HEADER_BYTES = 1024 * 1024 * 1024  # real headers are under 100 MB; refuse to buffer more
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_TREE_PAGES = 50  # Hub tree listing pages followed (1,000 entries each)

_SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_REPO_QUANT_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+):(?P<quant>[A-Za-z0-9_.-]+)$")
_HF_RE = re.compile(r"^hf://(?P<repo>[^/@\s]+/[^/@\s]+)(?:@(?P<rev>[^/\s]+))?/(?P<path>\S+)$")
_NOT_MODEL = ("mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-")

Progress = Callable[[int, int | None], None]


class ByteSource(Protocol):
    """Random-access reads over one file; ``read`` returns fewer bytes only at the end of the file."""

    name: str
    buffered: bool  # True when small reads are cheap (data already in memory): readers need not batch

    @property
    def size(self) -> int | None: ...

    def read(self, offset: int, n: int) -> bytes: ...

    def available(self, offset: int) -> int:
        """Bytes readable from ``offset`` without any I/O (0 when unknown)."""
        ...

    def close(self) -> None: ...


class LocalSource:
    """A local file."""

    buffered = False

    def __init__(self, path: str | Path) -> None:
        self.name = str(path)
        try:
            self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
            self._size = os.fstat(self._fh.fileno()).st_size
        except IsADirectoryError as exc:
            raise SourceError(f"{path}: is a directory, not a GGUF file", path=str(path)) from exc
        except FileNotFoundError as exc:
            raise SourceError(f"{path}: no such file", path=str(path)) from exc
        except OSError as exc:
            raise SourceError(f"{path}: cannot open ({exc.strerror or exc})", path=str(path)) from exc

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, n: int) -> bytes:
        try:
            self._fh.seek(offset)
            return self._fh.read(n)
        except OSError as exc:
            raise SourceError(f"{self.name}: read failed at offset {offset} ({exc.strerror or exc})") from exc

    def available(self, offset: int) -> int:
        return 0

    def close(self) -> None:
        self._fh.close()


class BytesSource:
    """Bytes already in memory (an upload, a test fixture)."""

    buffered = True

    def __init__(self, data: bytes, name: str = "<bytes>") -> None:
        self.name = name
        self._data = data

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, n: int) -> bytes:
        return self._data[offset : offset + n]

    def available(self, offset: int) -> int:
        return max(len(self._data) - offset, 0)

    def close(self) -> None:
        pass


class HttpSource:
    """An HTTP(S) file read from its start with Range requests in growing chunks, kept in memory.

    Only the bytes a reader asks for (rounded up to the chunk) are fetched; ``bytes_fetched`` and
    ``requests`` count them.
    """

    buffered = True

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
        progress: Progress | None = None,
        first_chunk_bytes: int = FIRST_CHUNK_BYTES,
    ) -> None:
        self.name = url
        self.url = url
        self._headers = dict(headers or {})
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=True)
        self._buf = bytearray()
        self._size: int | None = None
        self._next_chunk = first_chunk_bytes
        self._eof = False
        self._progress = progress
        self.requests = 0
        self.bytes_fetched = 0

    @property
    def size(self) -> int | None:
        return self._size

    def read(self, offset: int, n: int) -> bytes:
        end = offset + n
        if end > MAX_REMOTE_HEADER_BYTES and end > len(self._buf):
            raise RemoteError(
                f"{self.url}: header larger than {MAX_REMOTE_HEADER_BYTES:,} bytes (asked for byte {end:,})",
                url=self.url,
            )
        while len(self._buf) < end and not self._eof:
            self._fetch(max(self._next_chunk, end - len(self._buf)))
            self._next_chunk = min(self._next_chunk * CHUNK_GROWTH, MAX_CHUNK_BYTES)
        return bytes(self._buf[offset:end])

    def available(self, offset: int) -> int:
        return max(len(self._buf) - offset, 0)

    def _fetch(self, n: int) -> None:
        start = len(self._buf)
        if self._size is not None:
            n = min(n, self._size - start)
            if n <= 0:
                self._eof = True
                return
        headers = self._headers | {"Range": f"bytes={start}-{start + n - 1}", "Accept-Encoding": "identity"}
        self.requests += 1
        got = 0
        try:
            with self._client.stream("GET", self.url, headers=headers) as resp:
                self._check_status(resp, start)
                for piece in resp.iter_bytes():
                    take = piece[: n - got]
                    self._buf += take
                    got += len(take)
                    self.bytes_fetched += len(take)
                    if self._progress is not None:
                        self._progress(len(self._buf), self._size)
                    if got >= n:
                        break
        except httpx.TimeoutException as exc:
            raise RemoteError(f"{self.url}: timed out at byte {start + got}", url=self.url) from exc
        except httpx.HTTPError as exc:
            raise RemoteError(f"{self.url}: connection failed at byte {len(self._buf)} ({exc})", url=self.url) from exc
        except (httpx.InvalidURL, ValueError) as exc:
            raise RemoteError(f"{self.url}: invalid URL ({exc})", url=self.url) from exc
        if got < n:
            if self._size is not None and len(self._buf) < self._size:
                raise RemoteError(
                    f"{self.url}: connection closed early: got {got} of {n} bytes at offset {start}", url=self.url
                )
            self._eof = True

    def _check_status(self, resp: httpx.Response, start: int) -> None:
        status = resp.status_code
        if status == 206:
            total = _content_range_total(resp.headers.get("content-range", ""))
            if total is None:
                raise RemoteError(
                    f"{self.url}: partial answer without a valid Content-Range "
                    f"({resp.headers.get('content-range', 'none')!r:.60})",
                    url=self.url,
                    status=status,
                )
            self._size = total
            return
        if status == 416:
            if start > 0:  # asked past the end: the file ends exactly here
                self._size = start
                return
            raise RemoteError(
                f"{self.url}: server answered 416 Range Not Satisfiable for the first bytes (empty file?)",
                url=self.url,
                status=status,
            )
        if status == 200:
            length = resp.headers.get("content-length")
            if start == 0 and length is not None and length.isdigit() and int(length) <= self._next_chunk:
                self._size = int(length)  # a small file sent whole is fine
                return
            raise RemoteError(
                f"{self.url}: server ignores HTTP Range requests (answered 200 to bytes={start}-); "
                "download the file and inspect the local copy",
                url=self.url,
                status=status,
            )
        raise RemoteError(_status_message(self.url, status), url=self.url, status=status)

    def close(self) -> None:
        if self._own_client:
            self._client.close()


def _content_range_total(value: str) -> int | None:
    m = re.fullmatch(r"\s*bytes\s+\d+-\d+/(\d+)\s*", value)
    return int(m.group(1)) if m else None


def _status_message(url: str, status: int) -> str:
    hint = {
        401: "unauthorized: set HF_TOKEN for gated or private repositories",
        403: "forbidden: accept the model's licence on the Hub or check HF_TOKEN",
        404: "not found",
        429: "rate limited: retry later or set HF_TOKEN",
    }.get(status, "unexpected answer")
    return f"{url}: HTTP {status} ({hint})"


# --------------------------------------------------------------------------------------------
# Resolution


@dataclass(frozen=True)
class ResolvedSource:
    """What to read for a model source: its parts in order (local paths or URLs)."""

    text: str
    parts: tuple[str, ...]
    remote: bool
    headers: Mapping[str, str] = field(default_factory=dict)
    repo: str = ""  # Hugging Face repository when the source is on the Hub


def hub_endpoint() -> str:
    """The Hugging Face endpoint: ``HF_ENDPOINT`` or https://huggingface.co, without trailing slash."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _hub_headers() -> dict[str, str]:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    headers = {"User-Agent": "servefit"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def looks_like_gguf_source(text: str) -> bool:
    """True for a path ending in .gguf, an http(s) URL, ``hf://...`` or ``owner/repo:QUANT``."""
    text = text.strip()
    if text.startswith(("http://", "https://", "hf://")):
        return True
    if text.lower().endswith(".gguf"):
        return True
    return bool(_REPO_QUANT_RE.match(text))


def split_parts(name: str) -> tuple[str, ...] | None:
    """All part names of a split GGUF (``x-00002-of-00003.gguf`` -> the three names), else None."""
    head, sep, base = name.rpartition("/")
    m = _SPLIT_RE.match(base)
    if not m:
        return None
    count = int(m.group("count"))
    if count < 1 or int(m.group("index")) < 1 or int(m.group("index")) > count:
        raise SourceError(f"{name}: invalid split name (part {m.group('index')} of {m.group('count')})", path=name)
    prefix = head + sep + m.group("prefix")
    return tuple(f"{prefix}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1))


def resolve_source(text: str, *, client: httpx.Client | None = None) -> ResolvedSource:
    """Turn a model source into the parts to read; Hub shorthands are resolved through the Hub API."""
    text = text.strip()
    if not text:
        raise SourceError("empty model source")
    if text.startswith(("http://", "https://")):
        url = urlsplit(text)
        parts = split_parts(url.path)
        if parts is None:
            return ResolvedSource(text, (text,), remote=True)
        base = f"{url.scheme}://{url.netloc}"
        query = f"?{url.query}" if url.query else ""
        return ResolvedSource(text, tuple(base + p + query for p in parts), remote=True)
    if text.startswith("hf://"):
        m = _HF_RE.match(text)
        if not m:
            raise SourceError(f"{text}: expected hf://owner/repo/path/to/file.gguf", path=text)
        rev = m.group("rev") or "main"
        paths = split_parts(m.group("path")) or (m.group("path"),)
        urls = tuple(_resolve_url(m.group("repo"), rev, p) for p in paths)
        return ResolvedSource(text, urls, remote=True, headers=_hub_headers(), repo=m.group("repo"))
    path = Path(text).expanduser()
    if not path.exists():
        if _REPO_QUANT_RE.match(text):
            return _resolve_repo_quant(text, client)
        if text.lower().endswith(".gguf") or text.startswith((".", "/", "~")):
            raise SourceError(f"{text}: no such file", path=text)
        raise SourceError(
            f"{text}: not a GGUF source (expected a .gguf path, a URL, hf://owner/repo/file.gguf or owner/repo:QUANT)",
            path=text,
        )
    if path.is_dir():
        raise SourceError(f"{text}: is a directory, not a GGUF file", path=text)
    parts = split_parts(str(path))
    if parts is None:
        return ResolvedSource(text, (str(path),), remote=False)
    missing = [p for p in parts if not Path(p).is_file()]
    if missing:
        raise MissingSplitError(
            f"{text}: split part {missing[0]} is missing ({len(missing)} of {len(parts)} parts absent)",
            path=missing[0],
        )
    return ResolvedSource(text, parts, remote=False)


def _resolve_url(repo: str, rev: str, path: str) -> str:
    return f"{hub_endpoint()}/{repo}/resolve/{quote(rev, safe='')}/{quote(path)}"


def _hub_get_json(client: httpx.Client, url: str) -> tuple[Any, httpx.Response]:
    try:
        resp = client.get(url, headers=_hub_headers())
    except httpx.HTTPError as exc:
        raise RemoteError(f"{url}: Hub request failed ({exc})", url=url) from exc
    except (httpx.InvalidURL, ValueError) as exc:
        raise RemoteError(f"{url}: invalid Hub URL ({exc}); check HF_ENDPOINT", url=url) from exc
    if resp.status_code != 200:
        raise RemoteError(_status_message(url, resp.status_code), url=url, status=resp.status_code)
    try:
        return resp.json(), resp
    except ValueError as exc:
        raise RemoteError(f"{url}: Hub answered something that is not JSON", url=url) from exc


def list_repo_files(repo: str, rev: str = "main", *, client: httpx.Client | None = None) -> list[str]:
    """Every file path of a Hub repository (the tree API, recursive, following pagination)."""
    own = client is None
    client = client or httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=True)
    try:
        url: str | None = f"{hub_endpoint()}/api/models/{repo}/tree/{quote(rev, safe='')}?recursive=true"
        files: list[str] = []
        for _ in range(MAX_TREE_PAGES):
            if url is None:
                break
            data, resp = _hub_get_json(client, url)
            if not isinstance(data, list):
                raise RemoteError(f"{url}: unexpected Hub answer (expected a list of files)", url=url)
            files += [
                str(item["path"])
                for item in data
                if isinstance(item, dict) and item.get("type") == "file" and isinstance(item.get("path"), str)
            ]
            nxt = resp.links.get("next", {}).get("url")
            url = str(nxt) if nxt else None
        return files
    finally:
        if own:
            client.close()


def _resolve_repo_quant(text: str, client: httpx.Client | None) -> ResolvedSource:
    m = _REPO_QUANT_RE.match(text)
    assert m is not None
    repo, quant = m.group("repo"), m.group("quant")
    files = list_repo_files(repo, client=client)
    models = [
        f for f in files if f.lower().endswith(".gguf") and not any(s in f.rsplit("/", 1)[-1] for s in _NOT_MODEL)
    ]
    tag = re.compile(re.escape(quant) + r"[.-]", re.IGNORECASE)
    chosen = None
    for f in models:  # llama.cpp's find_best_model: first model file whose path has "<QUANT>." or "<QUANT>-"
        if tag.search(f):
            parts = split_parts(f)
            if parts is not None and parts[0] != f:
                continue
            chosen = f
            break
    if chosen is None:
        available = sorted({_quant_tag(f) for f in models} - {""})
        hint = f"; available: {', '.join(available)}" if available else "; the repository has no GGUF files"
        raise SourceError(f"{text}: no GGUF file for {quant} in {repo}{hint}", path=text)
    parts = split_parts(chosen) or (chosen,)
    present = set(files)
    missing = [p for p in parts if p not in present]
    if missing:
        raise MissingSplitError(f"{text}: split part {missing[0]} is missing from {repo}", path=missing[0])
    urls = tuple(_resolve_url(repo, "main", p) for p in parts)
    return ResolvedSource(text, urls, remote=True, headers=_hub_headers(), repo=repo)


def _is_model_file(path: str) -> bool:
    """llama.cpp's gguf_filename_is_model: a .gguf that is not a projector, imatrix or draft head."""
    base = path.rsplit("/", 1)[-1]
    return base.lower().endswith(".gguf") and not any(s in base for s in _NOT_MODEL)


def _quant_tag(path: str) -> str:
    stem = path.rsplit("/", 1)[-1][: -len(".gguf")]
    m = _SPLIT_RE.match(stem + ".gguf")
    if m:
        stem = m.group("prefix")
    t = re.search(r"[-.]([A-Z0-9_]+)$", stem, re.IGNORECASE)
    return t.group(1).upper() if t else ""


def open_part(
    location: str,
    *,
    headers: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
    progress: Progress | None = None,
) -> ByteSource:
    """Open one part (a local path or an http(s) URL) as a byte source."""
    if location.startswith(("http://", "https://")):
        return HttpSource(location, headers=headers, client=client, progress=progress)
    return LocalSource(location)
