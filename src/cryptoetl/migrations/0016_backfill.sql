-- Backfill (docs/backfill.md): history from the providers' history endpoints, recorded as runs.
--
-- 1. `etl_runs.trigger` accepts 'backfill'.
-- 2. "One running run per source" becomes two rules: one running live run (startup, schedule,
--    manual, cli) per source, and one running backfill per source. A backfill of CoinGecko and
--    a scheduled run of CoinGecko coexist; two backfills of one source do not.
-- 3. `backfill_runs`: what a backfill run was asked (coins, range) and how far it got, for the
--    dashboard and /api/v1/runs/{id}.
-- 4. `backfill_cursors`: one row per (source, coin, range): everything up to `done_until` is
--    committed, moved in the transaction of the chunk it covers, so a killed backfill
--    resumes at the first chunk it had not committed.

ALTER TABLE etl_runs DROP CONSTRAINT etl_runs_trigger_check;
ALTER TABLE etl_runs ADD CONSTRAINT etl_runs_trigger_check
    CHECK (trigger IN ('startup', 'schedule', 'manual', 'cli', 'backfill'));

DROP INDEX etl_runs_one_running;
CREATE UNIQUE INDEX etl_runs_one_running ON etl_runs (source)
    WHERE status = 'running' AND trigger <> 'backfill';
CREATE UNIQUE INDEX etl_runs_one_backfill ON etl_runs (source)
    WHERE status = 'running' AND trigger = 'backfill';

CREATE TABLE backfill_runs (
    run_id       bigint      PRIMARY KEY REFERENCES etl_runs (id),
    coins        text[]      NOT NULL,
    range_start  timestamptz NOT NULL,
    range_end    timestamptz NOT NULL,
    chunks_total integer     NOT NULL DEFAULT 0,
    chunks_done  integer     NOT NULL DEFAULT 0,
    coins_done   integer     NOT NULL DEFAULT 0,
    current_coin text,
    -- one {"coin": id, "error": text} per coin that could not be backfilled
    coin_errors  jsonb       NOT NULL DEFAULT '[]'::jsonb,
    CHECK (range_start < range_end)
);
COMMENT ON TABLE backfill_runs IS
    'Per backfill run: the coins and range asked, chunks and coins done, per-coin errors.';

CREATE TABLE backfill_cursors (
    source      text        NOT NULL,
    coin_id     text        NOT NULL,
    range_start timestamptz NOT NULL,
    range_end   timestamptz NOT NULL,
    done_until  timestamptz NOT NULL,
    state       text        NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    run_id      bigint      NOT NULL REFERENCES etl_runs (id),
    error       text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, coin_id, range_start, range_end)
);
COMMENT ON TABLE backfill_cursors IS
    'Per (source, coin, range) backfilled: committed up to done_until; done, running or failed.';
