"""The HTML pages: `/` (status), `/assets` and `/assets/{asset_id}` (one asset across
sources), `/rejected` (what validation refused).

Server-rendered with Jinja2 (autoescaped), one inline CSS block, charts drawn as inline SVG by
pure functions (`chart.py`, `timeline.py`, `ticks.py`); no script, no font, nothing fetched
from elsewhere. Pages read the database through the same query functions as the JSON API
(`db.runs`, `db.source_status`, `db.rejected`, `db.assets`) and reuse the API's parameter types
and rules (`api.params`, `api.freshness`, the assets route's path parameter). Only `app.py`
imports this package, to mount its routers; errors on these routes are pages
(`routing.PageRoute`). See docs/dashboard.md.
"""
