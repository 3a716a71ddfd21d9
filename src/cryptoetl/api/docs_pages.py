"""`/docs` (Swagger UI) and `/redoc` (ReDoc), served from the service itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank without a network.
Here the scripts and the stylesheet come from the `fastapi-offline` package (a maintained
bundle of both), mounted under `STATIC_URL`; the pages are FastAPI's own HTML pointing there,
and ReDoc without its Google fonts. Nothing is fetched from elsewhere: ReDoc's bundle points
its sidebar's "API docs by Redocly" logo at Redocly's CDN, so the bundle is served with that
one address replaced by an inline image (`offline_redoc`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response

STATIC_URL = "/static/api-docs"
# ReDoc's only request to another host: the logo in its sidebar footer, fetched once the sidebar
# has rendered (so a page read quickly may not show it). An empty inline SVG takes its place.
REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
INLINE_LOGO = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"
)


def assets_dir() -> Path:
    """The folder of `fastapi-offline`'s Swagger UI and ReDoc files."""
    return Path(str(files("fastapi_offline") / "static"))


def offline_redoc(bundle: str) -> str:
    """ReDoc's standalone bundle with its CDN logo replaced by an inline image."""
    return bundle.replace(REDOC_CDN_LOGO, INLINE_LOGO)


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Mount the bundled assets and add the two pages (create the app with both urls None)."""
    redoc_js = offline_redoc((assets_dir() / "redoc.standalone.js").read_text(encoding="utf-8"))
    redoc_js_url = f"{STATIC_URL}/redoc.offline.js"

    async def redoc_bundle(request: Request) -> Response:
        return Response(
            redoc_js,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    # before the mount, which would otherwise answer every path under STATIC_URL
    app.add_route(redoc_js_url, redoc_bundle, include_in_schema=False)
    app.mount(STATIC_URL, StaticFiles(directory=assets_dir()), name="api-docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or f"{docs_url}/oauth2-redirect"

    # Plain routes (not API routes): no query rules, no OpenAPI entry; the OAuth2 redirect
    # page takes whatever an identity provider sends.
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def swagger_ui_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{redoc_js_url}",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    app.add_route(redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_route(redoc_url, redoc, include_in_schema=False)
