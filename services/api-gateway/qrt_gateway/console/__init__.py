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

from pathlib import Path

from aiohttp import web

from ..context import gateway

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


def add_pages(app: web.Application) -> None:
    """Serve `/docs` and `/ui` (with their static files) from `app`."""
    app.router.add_get("/docs", docs_page)
    app.router.add_static("/docs/static", HERE / "swagger")
    app.router.add_get("/ui", _console_root)
    app.router.add_get("/ui/", console_page)
    app.router.add_static("/ui/static", HERE / "static")
    # Every answer, static files and errors too, gets the headers just before it is sent.
    app.on_response_prepare.append(_on_prepare)
