"""What one maintenance step did (`cryptoetl maintain`, docs/storage.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class StepReport:
    """One step's outcome: its name, one line a person reads, and the numbers behind it."""

    name: str
    summary: str
    counts: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "summary": self.summary, "counts": dict(self.counts)}
