-- Raw records of the HTTP sources stored as pages (docs/storage.md#raw-records-as-pages).
--
-- raw_http kept one row per record, about 1.3 KB of jsonb each: PostgreSQL compresses a value
-- only in a tuple over ~2 KB, so a record row is never compressed, and at the default mix and
-- RAW_RETENTION_DAYS=30 that alone was 40 GB. raw_http_pages keeps one row per loaded batch:
-- the batch's new records as one jsonb array in arrival order, which TOAST compresses (pglz)
-- to about a fifth, and each record's locator (the source's coin id and its own time) in the
-- same order in `keys` and `times`, so a record is found again as `records -> (i - 1)` where
-- keys[i] and times[i] are its locator.
--
-- Ids come from raw_http's own identity sequence: a page id never equals a raw_http id, so
-- every unified.raw_id stored before this migration keeps meaning its raw_http row, and a new
-- raw_id means the page that holds the record. Every record of a page has the page's id.
--
-- Partitioned by fetched_at, a day per partition (made by ensure_partitions like the other
-- tables); RAW_RETENTION_DAYS retires whole partitions of it exactly as it does raw_http's.
-- raw_http is no longer written by the loader; its rows stay readable and are retired by the
-- same retention until none is left. No data is moved.

CREATE TABLE raw_http_pages (
    id         bigint      NOT NULL,
    source     text        NOT NULL,
    run_id     bigint      NOT NULL,
    fetched_at timestamptz NOT NULL,
    keys       text[]      NOT NULL,
    times      timestamptz[] NOT NULL,
    records    jsonb       NOT NULL,
    CONSTRAINT raw_http_pages_pkey PRIMARY KEY (id, fetched_at),
    CONSTRAINT raw_http_pages_run_id_fkey FOREIGN KEY (run_id) REFERENCES etl_runs (id),
    CONSTRAINT raw_http_pages_aligned CHECK (
        cardinality(keys) = cardinality(times)
        AND cardinality(keys) = jsonb_array_length(records)
        AND cardinality(keys) > 0)
) PARTITION BY RANGE (fetched_at);
COMMENT ON TABLE raw_http_pages IS
    'Raw records of the HTTP sources, one row per loaded batch: records[i] has locator (keys[i], times[i]).';
COMMENT ON COLUMN raw_http_pages.keys IS 'Each record''s coin id (its locator key), in order.';
COMMENT ON COLUMN raw_http_pages.times IS 'Each record''s own time (its locator time), in order.';
COMMENT ON COLUMN raw_http_pages.records IS 'The batch''s new records as received, a jsonb array.';

DO $$
BEGIN
    EXECUTE format('ALTER TABLE raw_http_pages ALTER COLUMN id SET DEFAULT nextval(%L::regclass)',
                   pg_get_serial_sequence('raw_http', 'id'));
END
$$;

SELECT ensure_partitions('raw_http_pages', now() - interval '1 day', now() + interval '3 days');

-- Retirements of page partitions are recorded like those of the other raw tables.
ALTER TABLE raw_retirements DROP CONSTRAINT raw_retirements_table_name_check;
ALTER TABLE raw_retirements ADD CONSTRAINT raw_retirements_table_name_check
    CHECK (table_name IN ('raw_http', 'raw_http_pages', 'raw_csv'));
