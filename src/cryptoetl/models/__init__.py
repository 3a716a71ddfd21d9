"""The domain types every layer shares: frozen values, standard library only, no I/O.

- `records`: what flows through a run (records, batches, acceptances, rejections);
- `runs`: a run's trigger, status, counts and outcome;
- `backfill`: what a backfill is asked, and what it started;
- `maintenance`: what a maintenance step did;
- `assets`: coins, assets, pins and matching decisions, and the spread between sources.

The names are re-exported here, so `from cryptoetl.models import Batch` is the usual import.
"""

from cryptoetl.models.assets import (
    CONFIDENCE,
    Asset,
    Coin,
    Decision,
    Method,
    Pin,
    Rule,
    Spread,
    comparable,
    spread_of,
)
from cryptoetl.models.backfill import BackfillRequest, BackfillStarted
from cryptoetl.models.maintenance import StepReport
from cryptoetl.models.records import (
    Accepted,
    Batch,
    LocatorKind,
    RawLocator,
    Rejection,
    ResponseMeta,
    SourceRecord,
    UnifiedRecord,
)
from cryptoetl.models.runs import RunCounts, RunStatus, RunTrigger, SourceOutcome

__all__ = [
    "CONFIDENCE",
    "Accepted",
    "Asset",
    "BackfillRequest",
    "BackfillStarted",
    "Batch",
    "Coin",
    "Decision",
    "LocatorKind",
    "Method",
    "Pin",
    "RawLocator",
    "Rejection",
    "ResponseMeta",
    "Rule",
    "RunCounts",
    "RunStatus",
    "RunTrigger",
    "SourceOutcome",
    "SourceRecord",
    "Spread",
    "StepReport",
    "UnifiedRecord",
    "comparable",
    "spread_of",
]
