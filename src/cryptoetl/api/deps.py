"""FastAPI dependencies as `Annotated` aliases reading what the lifespan put on `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cryptoetl.config import Settings
from cryptoetl.db.pool import Pool


async def _pool(request: Request) -> Pool:
    pool: Pool = request.app.state.pool
    return pool


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


PoolDep = Annotated[Pool, Depends(_pool)]
SettingsDep = Annotated[Settings, Depends(_settings)]
