-- The whole data model of design.md section 3.
-- Times are timestamptz (UTC); counts are bigint; every table a user queries has a comment.

-- One row per source per run.
CREATE TABLE etl_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text        NOT NULL,
    trigger      text        NOT NULL CHECK (trigger IN ('startup', 'schedule', 'manual', 'cli')),
    status       text        NOT NULL DEFAULT 'running'
                             CHECK (status IN ('running', 'success', 'partial', 'failed')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    -- host:pid:token of the process that runs it, so a dead owner's run can be told apart
    owner        text        NOT NULL,
    fetched      bigint      NOT NULL DEFAULT 0,
    inserted     bigint      NOT NULL DEFAULT 0,
    updated      bigint      NOT NULL DEFAULT 0,
    unchanged    bigint      NOT NULL DEFAULT 0,
    rejected     bigint      NOT NULL DEFAULT 0,
    batches      integer     NOT NULL DEFAULT 0,
    error        text,
    CHECK ((status = 'running') = (finished_at IS NULL))
);
COMMENT ON TABLE etl_runs IS 'One row per source per ETL run: trigger, times, status, counts, error.';
CREATE INDEX etl_runs_source_started ON etl_runs (source, started_at DESC, id DESC);
CREATE INDEX etl_runs_started ON etl_runs (started_at DESC, id DESC);
-- At most one running run per source, across every process sharing the database.
CREATE UNIQUE INDEX etl_runs_one_running ON etl_runs (source) WHERE status = 'running';

-- Raw records exactly as they arrived. Unique on their locator: a re-run stores nothing twice.
CREATE TABLE raw_coinpaprika (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id            bigint      NOT NULL REFERENCES etl_runs (id),
    fetched_at        timestamptz NOT NULL,
    coin_id           text        NOT NULL,
    source_updated_at timestamptz NOT NULL,
    payload           jsonb       NOT NULL,
    UNIQUE (coin_id, source_updated_at)
);
COMMENT ON TABLE raw_coinpaprika IS 'CoinPaprika /tickers items as received; locator = (coin_id, last_updated).';

CREATE TABLE raw_coingecko (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id            bigint      NOT NULL REFERENCES etl_runs (id),
    fetched_at        timestamptz NOT NULL,
    coin_id           text        NOT NULL,
    source_updated_at timestamptz NOT NULL,
    payload           jsonb       NOT NULL,
    UNIQUE (coin_id, source_updated_at)
);
COMMENT ON TABLE raw_coingecko IS 'CoinGecko /coins/markets items as received; locator = (id, last_updated).';

CREATE TABLE raw_csv (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           bigint      NOT NULL REFERENCES etl_runs (id),
    fetched_at       timestamptz NOT NULL,
    file_fingerprint text        NOT NULL,
    line_no          bigint      NOT NULL,
    file_path        text        NOT NULL,
    payload          jsonb       NOT NULL,
    UNIQUE (file_fingerprint, line_no)
);
COMMENT ON TABLE raw_csv IS 'CSV rows as read (keyed by header); locator = (file fingerprint, line number).';

-- The unified history: one row per observation.
CREATE TABLE unified_crypto_data (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    coin_id     text             NOT NULL,
    name        text,
    symbol      text,
    price_usd   double precision NOT NULL,
    market_cap  double precision,
    volume_24h  double precision,
    source      text             NOT NULL,
    observed_at timestamptz      NOT NULL,
    ingested_at timestamptz      NOT NULL DEFAULT now(),
    run_id      bigint           NOT NULL,
    raw_id      bigint,
    CONSTRAINT unified_observation UNIQUE (source, coin_id, observed_at)
);
COMMENT ON TABLE unified_crypto_data IS
    'One row per (source, coin_id, observed_at); observed_at is the source''s own timestamp.';
-- The API's filters: coin_id across sources, symbol (case-insensitive), time ranges.
CREATE INDEX unified_coin_observed ON unified_crypto_data (coin_id, observed_at DESC);
CREATE INDEX unified_symbol ON unified_crypto_data (lower(symbol));
CREATE INDEX unified_observed ON unified_crypto_data (observed_at DESC, id DESC);

-- Row counts and a data version per source, maintained in the load's own transaction, so the
-- API can report an exact total and cache per data version without a count(*) per request.
CREATE TABLE source_stats (
    source       text        PRIMARY KEY,
    row_count    bigint      NOT NULL DEFAULT 0,
    data_version bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO source_stats (source) VALUES ('coinpaprika'), ('coingecko'), ('csv');

-- What failed validation, with its reason. Unique on what it is, so a re-run over the same bad
-- record updates last_run_id and seen_count instead of storing it again.
CREATE TABLE rejected_records (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text        NOT NULL,
    first_run_id bigint      NOT NULL REFERENCES etl_runs (id),
    last_run_id  bigint      NOT NULL REFERENCES etl_runs (id),
    locator      text        NOT NULL,
    file         text,
    line_no      bigint,
    raw          text        NOT NULL,
    reason       text        NOT NULL,
    raw_hash     text        NOT NULL,
    seen_count   integer     NOT NULL DEFAULT 1,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, locator, raw_hash)
);
COMMENT ON TABLE rejected_records IS 'Records that failed validation: source, locator (file:line), raw text, reason.';
CREATE INDEX rejected_last_run ON rejected_records (last_run_id);
CREATE INDEX rejected_source_seen ON rejected_records (source, last_seen_at DESC, id DESC);

-- One row per source: the resume cursor and the last outcome.
CREATE TABLE checkpoints (
    source          text        PRIMARY KEY,
    cursor          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status          text        NOT NULL DEFAULT 'never_run'
                                CHECK (status IN ('never_run', 'running', 'success', 'partial', 'failed')),
    last_run_id     bigint      REFERENCES etl_runs (id),
    last_success_at timestamptz,
    last_failure_at timestamptz,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE checkpoints IS 'Per source: resume cursor (moved with the data), last success / failure.';

-- The scheduler leader: whoever holds an unexpired lease runs scheduled ETL.
CREATE TABLE scheduler_lease (
    name          text        PRIMARY KEY,
    holder        text,
    fencing_token bigint      NOT NULL DEFAULT 0,
    acquired_at   timestamptz,
    renewed_at    timestamptz,
    expires_at    timestamptz NOT NULL DEFAULT '-infinity'
);
COMMENT ON TABLE scheduler_lease IS 'Leader lease for scheduled ETL across replicas (holder, fencing token, expiry).';
INSERT INTO scheduler_lease (name) VALUES ('etl');
