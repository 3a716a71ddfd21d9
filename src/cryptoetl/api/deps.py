"""FastAPI dependencies as `Annotated` aliases reading what the lifespan put on `app.state`.

Routing is explicit: a route that only reads takes `ReadPoolDep` (the read replica when one is
configured and usable, else the primary); a route that writes takes `WritePoolDep` (always the
primary). Health and metrics report the primary's state through `WritePoolDep` too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool
from cryptoetl.db.replica import ReadPool


async def _pool(request: Request) -> Pool:
    pool: Pool = request.app.state.pool
    return pool


async def _reads(request: Request) -> ReadPool:
    reads: ReadPool = request.app.state.reads
    return reads


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


WritePoolDep = Annotated[Pool, Depends(_pool)]
ReadPoolDep = Annotated[ReadPool, Depends(_reads)]
SettingsDep = Annotated[Settings, Depends(_settings)]
