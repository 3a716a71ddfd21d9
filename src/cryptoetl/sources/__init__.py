"""The sources and their registry: adding a source is one module and one line in REGISTRY."""

from __future__ import annotations

from cryptoetl.sources.base import SourceFactory

REGISTRY: dict[str, SourceFactory] = {}
