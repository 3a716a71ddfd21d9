-- Thinning (FULL_RESOLUTION_DAYS, docs/rollups.md): a partition of unified_crypto_data whose
-- whole range is older than the full-resolution window is replaced by a copy that keeps the
-- last observation of each (source, coin_id, UTC hour), once unified_hourly holds every
-- observation of those hours. This table records each partition thinned (or found to hold
-- hourly or coarser data already), so `cryptoetl maintain` does each one once.

CREATE TABLE unified_thinned (
    partition   text        NOT NULL,
    lo          timestamptz NOT NULL,
    hi          timestamptz NOT NULL,
    rows_before bigint      NOT NULL,
    rows_after  bigint      NOT NULL,
    thinned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lo, hi)
);
COMMENT ON TABLE unified_thinned IS
    'Partitions of unified_crypto_data thinned to one observation per (source, coin, hour).';
