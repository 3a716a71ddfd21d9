"""The sources the service knows, by name: `Registry(CoinGecko, CoinPaprika, CsvSource)`.

Everything the rest of the service needs about a source comes from its class's `SourceInfo`:
the names the settings, the CLI and the API accept; which raw table keeps its records; its rank
when assets are named; its settings. Adding a source is one module and one line in
`cryptoetl.sources.REGISTRY`; a test can build a registry with a source of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from cryptoetl.config import SourceSettings
from cryptoetl.sources.base import SourceClass, SourceInfo


class Registry:
    """An ordered set of source classes, by name (their `info.name`)."""

    def __init__(self, *classes: SourceClass) -> None:
        self._classes: dict[str, SourceClass] = {}
        for cls in classes:
            if cls.info.name in self._classes:
                raise ValueError(f"two sources are named {cls.info.name!r}")
            self._classes[cls.info.name] = cls

    @property
    def names(self) -> tuple[str, ...]:
        """Every source's name, in registration order."""
        return tuple(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[SourceClass]:
        return iter(self._classes.values())

    def get(self, name: str) -> SourceClass | None:
        """The class of source `name`, or None."""
        return self._classes.get(name)

    def info(self, name: str) -> SourceInfo | None:
        """The `SourceInfo` of source `name`, or None."""
        cls = self._classes.get(name)
        return cls.info if cls is not None else None

    def settings_classes(self) -> Mapping[str, type[SourceSettings] | None]:
        """Each source's settings class (None: it has none), by source name, in order."""
        return {name: cls.info.settings for name, cls in self._classes.items()}

    def with_sources(self, *classes: SourceClass) -> Registry:
        """This registry plus `classes`."""
        return Registry(*self._classes.values(), *classes)
