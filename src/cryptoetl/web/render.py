"""Rendering pages: the Jinja2 environment (autoescaped), the one CSS block, the headers.

`Pages` is created once by `create_app` and kept on `app.state.pages`. Every page carries a
Content-Security-Policy that allows no script at all and only the page's own CSS block (by its
hash), so even a rendering bug cannot run what a coin name or a CSV line smuggles in, and the
browser fetches nothing from anywhere else.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from cryptoetl import __version__
from cryptoetl.api.errors import request_id_of
from cryptoetl.api.middleware import latency_ms
from cryptoetl.web import format as fmt

ERROR_TITLES = {
    400: "Bad request",
    404: "Not found",
    422: "Invalid parameters",
    503: "The database is unavailable",
}


class Pages:
    """Renders the templates of `cryptoetl.web` into HTML responses."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("cryptoetl.web", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        css = (resources.files("cryptoetl.web") / "templates" / "style.css").read_text("utf-8")
        digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        self.css = Markup(css)  # noqa: S704 - our own stylesheet, shipped in the package
        self.csp = (
            f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
        self.env.filters.update(
            count=fmt.count,
            usd=fmt.usd,
            compact_usd=fmt.compact_usd,
            percent=fmt.percent,
            signed_percent=fmt.signed_percent,
            utc=fmt.utc,
            span=fmt.span,
            every=fmt.every,
            basename=fmt.basename,
            iso=lambda moment: moment.isoformat(),
        )

    def when(self, moment: datetime, now: datetime) -> Markup:
        """`<time>` with the UTC time, machine-readable, then how long ago."""
        return Markup('<time datetime="{}">{}</time> <span class="muted">({})</span>').format(
            moment.isoformat(), fmt.utc(moment), fmt.ago(moment, now)
        )

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        now = context.get("now") or datetime.now(UTC)
        values = {
            "css": self.css,
            "version": __version__,
            "request_id": request_id_of(request),
            "path": request.url.path,
            "now": now,
            "ago": lambda moment: fmt.ago(moment, now),
            "when": lambda moment: self.when(moment, now),
            **context,
        }
        values["elapsed_ms"] = latency_ms(request)
        body = self.env.get_template(template).render(values)
        response = HTMLResponse(body, status_code=status, headers=dict(headers or {}))
        response.headers["Content-Security-Policy"] = self.csp
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def error(
        self,
        request: Request,
        status: int,
        message: str,
        *,
        details: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """The error page: what went wrong in words, the request id, never a traceback."""
        title = ERROR_TITLES.get(status, "Something went wrong")
        context = {"title": title, "status": status, "message": message, "details": details or []}
        return self.render(request, "error.html", context, status=status, headers=headers)
