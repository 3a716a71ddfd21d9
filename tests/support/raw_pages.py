"""The HTTP sources' raw records as rows again, for tests: since migration 0017 they are stored
as pages (`raw_http_pages`, one row per batch, `records[i]` located by `keys[i]`, `times[i]`).

`RAW_RECORDS` is a query of one row per stored record with the columns `raw_http` had (`id` is
the page's id, which is the record's raw id; `position` its index in the page); use it as a
subquery: `FROM ({RAW_RECORDS}) AS r`.
"""

from __future__ import annotations

RAW_RECORDS = """
SELECT p.id, p.source, p.run_id, p.fetched_at, x.key AS coin_id, x.at AS source_updated_at,
       p.records -> (x.i - 1)::integer AS payload, (x.i - 1)::integer AS position
FROM raw_http_pages AS p, unnest(p.keys, p.times) WITH ORDINALITY AS x(key, at, i)
"""


def raw_records_of(source: str) -> str:
    """A `FROM` clause of `source`'s stored raw records (for `SELECT count(*) FROM ...`)."""
    if not source.isidentifier():
        raise ValueError(source)
    return f"({RAW_RECORDS}) AS r WHERE r.source = '{source}'"
