"""The HTML pages: `/` (status), `/assets/{asset_id}` (one asset across sources), `/rejected`.

Server-rendered with Jinja2 (autoescaped), one inline CSS block, charts drawn as inline SVG by
pure functions (`chart.py`, `timeline.py`); no script, no font, nothing fetched from elsewhere.
Pages read the database through the same query functions as the JSON API. `api/app.py` mounts
the routers; this package uses only leaf modules of `api` (deps, freshness, params, schemas).
"""
