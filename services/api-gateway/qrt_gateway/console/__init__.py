"""The gateway's pages for people: `/docs`, the API rendered by a vendored Swagger UI 5 (it
reads `/openapi.json`, OpenAPI 3.1), and `/ui`, the web console (static ES modules that call
the API as any client does; no build step).

Both are static files served without credentials: what they show comes from API calls carrying
the bearer key the person signs in with. Every response under them carries a strict
Content-Security-Policy (scripts only from the gateway itself, no inline script, no other
origin), so text from users (program names, logs, results) that the pages show as text could
not run even if it got into markup.
"""

from __future__ import annotations

import functools
import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from ..context import gateway
from ..plumbing import Handler, error_response

HERE = Path(__file__).parent
SWAGGER_UI_VERSION = "5.35.0"
"""The swagger-ui-dist release vendored in `swagger/` (Apache-2.0)."""

CONSOLE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The console's Content-Security-Policy: its own scripts and styles only, API calls and
websockets to the gateway only."""
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
"""`/docs`'s policy: as the console's, but Swagger UI (React) sets style attributes."""

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qrt API</title>
<link rel="icon" href="/ui/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/ui/static/docs.js"></script>
</body></html>
"""


async def docs_page(request: web.Request) -> web.Response:
    """`/docs`: Swagger UI on `/openapi.json`."""
    return web.Response(text=DOCS_PAGE, content_type="text/html")


CONSOLE_PAGE = (HERE / "static" / "index.html").read_text()
AUTH_OFF = '<meta name="qrt-auth" content="off">'


async def console_page(request: web.Request) -> web.Response:
    """`/ui/`: the console's one page (its views are picked by the URL's fragment); it says
    whether keys are on, so the console asks for one before its first request."""
    page = CONSOLE_PAGE
    if gateway(request).settings.auth:
        page = page.replace(AUTH_OFF, '<meta name="qrt-auth" content="on">')
    return web.Response(text=page, content_type="text/html")


async def _console_root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


def _protect(path: str, response: web.StreamResponse) -> None:
    if path == "/ui" or path.startswith("/ui/"):
        policy = CONSOLE_POLICY
    elif path == "/docs" or path.startswith("/docs/"):
        policy = DOCS_POLICY
    else:
        return
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    _protect(request.path, response)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@functools.lru_cache(maxsize=256)
def _is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, without port) names this machine's loopback.
    Cached: every request that changes something asks it twice, of the same few names."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    """The name or address of a `Host` header value, without its port."""
    return urlsplit(f"//{host}").hostname or ""


def _cross_site(request: web.Request) -> str | None:
    """Why a browser request to a gateway without keys must be refused, or None.

    Without keys nothing but the request's origin tells the person's own pages from any other
    site the person visits: a page elsewhere may POST a JSON body as `text/plain` (no CORS
    preflight) to upload a program and run it, or open a job's websocket. So a request that
    changes something, or opens a websocket, is refused when its `Origin` is not the gateway's
    own. A gateway listening on loopback also refuses a `Host` that is not a loopback name: a
    site whose name its owner re-points at 127.0.0.1 (DNS rebinding) would otherwise be the
    same origin as the gateway."""
    settings = gateway(request).settings
    if settings.auth:
        return None  # a bearer key, which no other site has, is needed anyway
    host = request.headers.get("Host", "")
    if _is_loopback(settings.host) and not _is_loopback(_host_name(host)):
        return (
            f"Host {host!r} is not this machine's loopback; "
            "open the gateway as 127.0.0.1 or localhost"
        )
    upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
    if request.method in SAFE_METHODS and not upgrade:
        return None
    origin = request.headers.get("Origin")
    if origin is None:
        return None  # not sent by a browser's page (curl, the client, stock SDKs)
    # A proxy in front may pass the name the browser used as X-Forwarded-Host (a page
    # elsewhere cannot set that header without a CORS preflight, which the gateway refuses).
    forwarded = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
    own = {host.lower(), forwarded.lower()} - {""}
    if origin == "null" or urlsplit(origin).netloc.lower() not in own:
        return (
            f"cross-site request from {origin} refused: "
            "without keys, only the gateway's own pages may change anything"
        )
    return None


@web.middleware
async def refuse_cross_site(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A 403 (field `Origin`, or `Host`) for what `_cross_site` refuses."""
    why = _cross_site(request)
    if why is not None:
        return error_response(403, why, "Host" if why.startswith("Host") else "Origin")
    return await handler(request)


def add_pages(app: web.Application) -> None:
    """Serve `/docs` and `/ui` (with their static files) from `app`."""
    app.router.add_get("/docs", docs_page)
    app.router.add_static("/docs/static", HERE / "swagger")
    app.router.add_get("/ui", _console_root)
    app.router.add_get("/ui/", console_page)
    app.router.add_static("/ui/static", HERE / "static")
    # Every answer, static files and errors too, gets the headers just before it is sent.
    app.on_response_prepare.append(_on_prepare)
    app.middlewares.append(refuse_cross_site)
