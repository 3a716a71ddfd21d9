-- Raw retention and maintenance runs (docs/storage.md).
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
