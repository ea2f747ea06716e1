"""The ASGI application: server-rendered pages, raw values, the JSON API, health and site map.

Every handler validates its path and query first (a bad id or value is a 400 with one clear line),
then asks :class:`~servefit.web.pages.Pages` for the page. ``NotFoundError`` becomes a 404 page
that links the closest matches, any other ``ServefitError`` a 400, and anything unexpected a plain
500 page: a response never carries a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servefit.errors import (
    NotFoundError,
    RenderError,
    ServefitError,
    UnknownHardwareError,
    UnknownModelError,
    UnknownQuantError,
)
from servefit.web import urls
from servefit.web.data import SiteData
from servefit.web.pages import Pages, Suggestion

__all__ = ["BadRequest", "create_app"]

log = logging.getLogger("servefit.web")

MAX_QUERY_VALUE = 200
MAX_QUERY_STRING = 2000
MAX_CONTEXT = 16 * 1024 * 1024
PAGE_HEADERS = {"Cache-Control": "public, max-age=600", "X-Content-Type-Options": "nosniff"}

Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """Invalid input from the request itself (path segment or query value)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _check_id(value: str, what: str) -> str:
    if not urls.is_valid_id(value):
        raise BadRequest(f"invalid {what} {value[:60]!r}: use letters, digits and . _ + - only")
    return value


def _check_target(value: str) -> str:
    if not urls.is_valid_target_id(value):
        raise BadRequest(f"invalid hardware id {value[:60]!r}: use letters, digits, . _ + - and at most two '/'")
    return value


def _query(request: Request, name: str, *, required: bool = True) -> str | None:
    values = request.query_params.getlist(name)
    if not values:
        if required:
            raise BadRequest(f"missing query parameter {name!r}")
        return None
    if len(values) > 1:
        raise BadRequest(f"query parameter {name!r} given {len(values)} times")
    value = values[0]
    if len(value) > MAX_QUERY_VALUE:
        raise BadRequest(f"query parameter {name!r} is too long ({len(value)} characters, at most {MAX_QUERY_VALUE})")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadRequest(f"query parameter {name!r} contains control characters")
    return value


def _check_query_string(request: Request) -> None:
    if len(request.scope.get("query_string", b"")) > MAX_QUERY_STRING:
        raise BadRequest(f"query string too long (at most {MAX_QUERY_STRING} bytes)")


def _is_raw(request: Request) -> bool:
    """Addresses that answer machines (JSON API, values files): errors come back as JSON."""
    return request.url.path.startswith(("/api/", "/values/"))


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)


MAX_PATH = 600


class PathGuard:
    """ASGI middleware: a path with ``..`` or ``.`` segments, control characters or an absurd length
    is a 400 before any routing (so no handler ever sees a traversal attempt)."""

    def __init__(self, app: ASGIApp, render: Callable[[str], str]) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope.get("path", "")
            problem = ""
            if len(path) > MAX_PATH:
                problem = f"address too long ({len(path)} characters, at most {MAX_PATH})"
            elif any(seg in (".", "..") for seg in path.split("/")):
                problem = "address contains '.' or '..' segments"
            elif any(ord(c) < 32 or ord(c) == 127 or c == "\\" for c in path):
                problem = "address contains control characters or backslashes"
            if problem:
                if path.startswith(("/api/", "/values/")):
                    response: Response = JSONResponse({"error": problem}, status_code=400)
                else:
                    response = HTMLResponse(self.render(problem), status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ResponseCache:
    """ASGI middleware: remember the bytes of successful GET responses marked ``public`` and answer
    repeats without routing or rendering. Every page is a pure function of its address and the
    embedded catalog, so a cached answer is the answer. Bounded by entry count and total bytes."""

    def __init__(self, app: ASGIApp, max_entries: int = 4096, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.app = app
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        self.entries: dict[tuple[str, bytes], tuple[int, list[tuple[bytes, bytes]], bytes]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope.get("query_string", b""))
        hit = self.entries.get(key)
        if hit is not None:
            status, headers, body = hit
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
            return
        if scope["method"] == "HEAD":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._store(key, start, b"".join(chunks))
            await send(message)

        await self.app(scope, receive, capture)

    def _store(self, key: tuple[str, bytes], start: dict[str, Any], body: bytes) -> None:
        headers = list(start.get("headers", []))
        public = any(k.lower() == b"cache-control" and b"public" in v for k, v in headers)
        if start.get("status") != 200 or not public or len(body) > self.max_bytes // 16:
            return
        if len(self.entries) >= self.max_entries or self.size + len(body) > self.max_bytes:
            self.entries.clear()
            self.size = 0
        self.entries[key] = (200, headers, body)
        self.size += len(body)


def create_app(data: SiteData | None = None, *, base_url: str = "http://127.0.0.1:8000") -> Starlette:
    """The website over ``data`` (the embedded catalog when None); ``base_url`` prefixes absolute links."""
    if data is None:
        from servefit.web.catalog import site_data_from_catalog

        data = site_data_from_catalog()
    pages = Pages(data, base_url=base_url)

    def suggestions_for(exc: NotFoundError, make: Callable[[str], str]) -> list[Suggestion]:
        return [Suggestion(make(s), make(s)) for s in exc.suggestions]

    def not_found(exc: NotFoundError, links: Sequence[Suggestion]) -> HTMLResponse:
        return HTMLResponse(pages.not_found(str(exc), links), status_code=404)

    def guarded(handler: Handler) -> Handler:
        async def wrapper(request: Request) -> Response:
            try:
                _check_query_string(request)
                return await handler(request)
            except BadRequest as exc:
                if _is_raw(request):
                    return JSONResponse({"error": exc.message}, status_code=400)
                return HTMLResponse(pages.bad_request(exc.message), status_code=400)
            except NotFoundError as exc:
                if _is_raw(request):
                    return JSONResponse({"error": str(exc), "suggestions": list(exc.suggestions)}, status_code=404)
                return not_found(exc, [])
            except ServefitError as exc:
                if _is_raw(request):
                    return JSONResponse({"error": str(exc)}, status_code=400)
                return HTMLResponse(pages.bad_request(str(exc)), status_code=400)

        return wrapper

    async def home(request: Request) -> Response:
        return _html(pages.home())

    async def search(request: Request) -> Response:
        q = (_query(request, "q", required=False) or "").strip()
        return _html(pages.search_all() if not q else pages.search(q))

    async def models_index(request: Request) -> Response:
        return _html(pages.models_index())

    async def model_page(request: Request) -> Response:
        model_id = _check_id(request.path_params["model"], "model id")
        try:
            model = data.model(model_id)
        except UnknownModelError as exc:
            return not_found(exc, suggestions_for(exc, urls.model_url))
        if model.id != model_id:
            return RedirectResponse(urls.model_url(model.id), status_code=301)
        return _html(pages.model(model.id))

    async def quant_page(request: Request) -> Response:
        model_id = _check_id(request.path_params["model"], "model id")
        quant = _check_id(request.path_params["quant"], "quantization")
        try:
            model = data.model(model_id)
        except UnknownModelError as exc:
            return not_found(exc, suggestions_for(exc, urls.model_url))
        try:
            canonical = data.quant(model, quant)
        except UnknownQuantError as exc:
            return not_found(exc, suggestions_for(exc, lambda q: f"{urls.model_url(model.id)}/{urls.quant_slug(q)}"))
        path = f"{urls.model_url(model.id)}/{urls.quant_slug(canonical)}"
        if path != request.url.path:
            return RedirectResponse(path, status_code=301)
        return _html(pages.quant(model.id, canonical))

    async def hardware_index(request: Request) -> Response:
        return _html(pages.hardware_index())

    async def hardware_page(request: Request) -> Response:
        target_id = _check_target(request.path_params["target"])
        try:
            target = data.target(target_id)
        except UnknownHardwareError as exc:
            return not_found(exc, suggestions_for(exc, urls.hardware_url))
        if target.id != target_id:
            return RedirectResponse(urls.hardware_url(target.id), status_code=301)
        return _html(pages.hardware(target.id))

    async def deploy_page(request: Request) -> Response:
        model_id = _check_id(request.path_params["model"], "model id")
        quant = _check_id(request.path_params["quant"], "quantization")
        target_id = _check_target(request.path_params["target"])
        try:
            model = data.model(model_id)
        except UnknownModelError as exc:
            return not_found(exc, suggestions_for(exc, lambda m: urls.deploy_url(m, quant, target_id)))
        try:
            canonical = data.quant(model, quant)
        except UnknownQuantError as exc:
            return not_found(exc, suggestions_for(exc, lambda q: urls.deploy_url(model.id, q, target_id)))
        try:
            target = data.target(target_id)
        except UnknownHardwareError as exc:
            return not_found(exc, suggestions_for(exc, lambda t: urls.deploy_url(model.id, canonical, t)))
        path = urls.deploy_url(model.id, canonical, target.id)
        if path != request.url.path:
            return RedirectResponse(path, status_code=301)
        return _html(pages.deploy(model.id, canonical, target.id))

    async def values_file(request: Request) -> Response:
        model_id = _check_id(request.path_params["model"], "model id")
        quant = _check_id(request.path_params["quant"], "quantization")
        target_path: str = request.path_params["target"]
        if not target_path.endswith(".yaml"):
            raise BadRequest(f"values files end in .yaml, not {target_path[-60:]!r}")
        target_id = _check_target(target_path.removesuffix(".yaml"))
        model = data.model(model_id)
        canonical = data.quant(model, quant)
        target = data.target(target_id)
        try:
            body = pages.values(model.id, canonical, target.id)
        except RenderError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        filename = target.id.replace("/", "--") + ".yaml"
        return PlainTextResponse(
            body,
            media_type="text/yaml; charset=utf-8",
            headers={**PAGE_HEADERS, "Content-Disposition": f'inline; filename="{filename}"'},
        )

    async def api_plan(request: Request) -> Response:
        model_id = _check_id(_query(request, "model") or "", "model id")
        quant = _check_id(_query(request, "quant") or "", "quantization")
        target_id = _check_target(_query(request, "target") or "")
        context_text = _query(request, "context", required=False)
        context: int | None = None
        if context_text:
            if not context_text.isdigit() or len(context_text) > 9:
                raise BadRequest(f"context must be a whole number of tokens, not {context_text[:30]!r}")
            context = int(context_text)
            if not 1 <= context <= MAX_CONTEXT:
                raise BadRequest(f"context must be between 1 and {MAX_CONTEXT:,} tokens, not {context:,}")
        model = data.model(model_id)
        canonical = data.ladder_quant(model, quant)
        machine = data.machine(target_id)
        body = pages.api_plan(model.id, canonical, machine.id, context)
        return Response(body, media_type="application/json", headers=PAGE_HEADERS)

    async def api_plan_static(request: Request) -> Response:
        model_id = _check_id(request.path_params["model"], "model id")
        quant = _check_id(request.path_params["quant"], "quantization")
        target_path: str = request.path_params["target"]
        if not target_path.endswith(".json"):
            raise BadRequest("plan documents end in .json")
        target_id = _check_target(target_path.removesuffix(".json"))
        model = data.model(model_id)
        canonical = data.quant(model, quant)
        target = data.target(target_id)
        body = pages.api_plan(model.id, canonical, target.id, None)
        return Response(body, media_type="application/json", headers=PAGE_HEADERS)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "models": len(data.models), "targets": len(data.targets)})

    async def sitemap(request: Request) -> Response:
        return Response(pages.sitemap_index(), media_type="application/xml", headers=PAGE_HEADERS)

    async def sitemap_part(request: Request) -> Response:
        name: str = request.path_params["name"]
        if not name.endswith(".xml"):
            raise BadRequest("site maps end in .xml")
        stem = _check_id(name.removesuffix(".xml"), "site map")
        body = pages.sitemap_pages() if stem == "pages" else pages.sitemap_for(data.model(stem).id)
        return Response(body, media_type="application/xml", headers=PAGE_HEADERS)

    async def robots(request: Request) -> Response:
        return PlainTextResponse(f"User-agent: *\nAllow: /\nSitemap: {pages.base_url}/sitemap.xml\n")

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            path = request.url.path
            message = f"There is no page at {path[:120]}."
            links = _path_suggestions(path)
            if path.startswith("/api/"):
                return JSONResponse({"error": message}, status_code=404)
            return HTMLResponse(pages.not_found(message, links), status_code=404)
        if status == 405:
            return PlainTextResponse("Method not allowed", status_code=405)
        return PlainTextResponse(f"HTTP {status}", status_code=status)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("error serving %s", request.url.path, exc_info=exc)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "internal error"}, status_code=500)
        return HTMLResponse(pages.server_error(), status_code=500)

    def _path_suggestions(path: str) -> list[Suggestion]:
        words = [w for w in path.replace("-", " ").replace("/", " ").split() if len(w) > 1][:4]
        if not words:
            return []
        query = " ".join(words)
        return [Suggestion(f"Search for “{query}”", f"/search?q={'+'.join(words)}")]

    def route(path: str, handler: Handler, name: str) -> Route:
        return Route(path, guarded(handler), methods=["GET"], name=name)

    routes = [
        route("/", home, "home"),
        route("/search", search, "search"),
        route("/models", models_index, "models"),
        route("/models/{model}", model_page, "model"),
        route("/models/{model}/{quant}", quant_page, "quant"),
        route("/hardware", hardware_index, "hardware_index"),
        route("/hardware/{target:path}", hardware_page, "hardware"),
        route("/deploy/{model}/{quant}/{target:path}", deploy_page, "deploy"),
        route("/values/{model}/{quant}/{target:path}", values_file, "values"),
        route("/api/plan", api_plan, "api_plan"),
        route("/api/plans/{model}/{quant}/{target:path}", api_plan_static, "api_plan_static"),
        route("/healthz", healthz, "healthz"),
        route("/sitemap.xml", sitemap, "sitemap"),
        route("/sitemaps/{name}", sitemap_part, "sitemap_part"),
        route("/robots.txt", robots, "robots"),
        Mount("/static", StaticFiles(packages=[("servefit.web", "static")]), name="static"),
    ]
    exception_handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: http_error,
        Exception: server_error,
    }
    app = Starlette(
        routes=routes,
        exception_handlers=exception_handlers,
        middleware=[Middleware(ResponseCache), Middleware(PathGuard, render=pages.bad_request)],
    )
    app.state.pages = pages
    app.state.data = data
    return app
