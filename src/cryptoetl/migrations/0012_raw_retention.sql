-- Raw retention, maintenance runs, and the pairs of the latest view (docs/storage.md).
--
-- raw_retirements  one row per raw partition retired after RAW_RETENTION_DAYS: which table, its
--                  time range, how many rows and bytes it held and the range of their ids. A
--                  unified row whose raw_id falls in a retired range of its raw table has a
--                  raw record that was retired (the API says "retired"), not a broken link.
--                  retired_at is null while the partition is being detached and dropped; the
--                  next maintenance finishes such a retirement.
-- etl_runs.report  what a maintenance run did, step by step (null for source runs). A
--                  maintenance run is an etl_runs row of source 'maintenance', so it is listed,
--                  single-flighted and reaped like any run.

CREATE TABLE raw_retirements (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name text        NOT NULL CHECK (table_name IN ('raw_http', 'raw_csv')),
    partition  text        NOT NULL,
    lo         timestamptz NOT NULL,
    hi         timestamptz NOT NULL,
    rows       bigint      NOT NULL,
    bytes      bigint      NOT NULL,
    min_id     bigint,
    max_id     bigint,
    run_id     bigint      REFERENCES etl_runs (id),
    started_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);
COMMENT ON TABLE raw_retirements IS
    'Raw partitions retired after RAW_RETENTION_DAYS: table, time range, rows, bytes, id range.';
CREATE INDEX raw_retirements_ids ON raw_retirements (table_name, min_id, max_id);

ALTER TABLE etl_runs ADD COLUMN report jsonb;
COMMENT ON COLUMN etl_runs.report IS 'What a maintenance run did, step by step.';

-- unified_pairs: every (source, coin_id) of the unified history with the time of its newest
-- observation, kept by statement triggers whoever writes the table. The `latest` view of
-- /api/v1/data reads the pairs here and each pair's newest row by one probe of the unique key
-- (runtime partition pruning to one partition), instead of walking the unique index of every
-- partition for the next pair (a merge of every partition per step: measured 4-7x slower than
-- the unpartitioned table at 1,000,000 rows). A pair whose rows were all deleted stays, with
-- last_observed_at null, and the reader skips it.
CREATE TABLE unified_pairs (
    source           text        NOT NULL,
    coin_id          text        NOT NULL,
    last_observed_at timestamptz,
    PRIMARY KEY (source, coin_id)
);
COMMENT ON TABLE unified_pairs IS
    'Every (source, coin_id) of unified_crypto_data and its newest observed_at (kept by triggers).';

INSERT INTO unified_pairs (source, coin_id, last_observed_at)
SELECT source, coin_id, max(observed_at) FROM unified_crypto_data GROUP BY source, coin_id;

CREATE FUNCTION unified_pairs_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO unified_pairs AS p (source, coin_id, last_observed_at)
    SELECT source, coin_id, max(observed_at) FROM new_rows GROUP BY source, coin_id
    ON CONFLICT (source, coin_id) DO UPDATE SET last_observed_at = EXCLUDED.last_observed_at
    WHERE p.last_observed_at IS NULL OR EXCLUDED.last_observed_at > p.last_observed_at;
    RETURN NULL;
END
$$;

-- The pairs whose newest row was deleted (or moved away) get their newest remaining one.
CREATE FUNCTION unified_pairs_recompute() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE unified_pairs AS p
       SET last_observed_at = (SELECT max(u.observed_at) FROM unified_crypto_data AS u
                                WHERE u.source = p.source AND u.coin_id = p.coin_id)
      FROM (SELECT DISTINCT source, coin_id, observed_at FROM old_rows) AS o
     WHERE p.source = o.source AND p.coin_id = o.coin_id AND p.last_observed_at = o.observed_at;
    RETURN NULL;
END
$$;

CREATE FUNCTION unified_pairs_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO unified_pairs AS p (source, coin_id, last_observed_at)
    SELECT source, coin_id, max(observed_at) FROM new_rows GROUP BY source, coin_id
    ON CONFLICT (source, coin_id) DO UPDATE SET last_observed_at = EXCLUDED.last_observed_at
    WHERE p.last_observed_at IS NULL OR EXCLUDED.last_observed_at > p.last_observed_at;
    -- only rows whose key changed can have taken a pair's newest time away (the loader's
    -- upserts keep the key: nothing to recompute for them)
    UPDATE unified_pairs AS p
       SET last_observed_at = (SELECT max(u.observed_at) FROM unified_crypto_data AS u
                                WHERE u.source = p.source AND u.coin_id = p.coin_id)
      FROM (SELECT source, coin_id, observed_at FROM old_rows
            EXCEPT
            SELECT source, coin_id, observed_at FROM new_rows) AS o
     WHERE p.source = o.source AND p.coin_id = o.coin_id AND p.last_observed_at = o.observed_at;
    RETURN NULL;
END
$$;

CREATE FUNCTION unified_pairs_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM unified_pairs;
    RETURN NULL;
END
$$;

CREATE TRIGGER unified_pairs_insert AFTER INSERT ON unified_crypto_data
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unified_pairs_after_insert();
CREATE TRIGGER unified_pairs_update AFTER UPDATE ON unified_crypto_data
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unified_pairs_after_update();
CREATE TRIGGER unified_pairs_delete AFTER DELETE ON unified_crypto_data
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unified_pairs_recompute();
CREATE TRIGGER unified_pairs_truncate AFTER TRUNCATE ON unified_crypto_data
    FOR EACH STATEMENT EXECUTE FUNCTION unified_pairs_after_truncate();
