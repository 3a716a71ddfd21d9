-- One raw table for every source whose records are located by (coin id, the source's own time):
-- the HTTP sources. `raw_coingecko` and `raw_coinpaprika` were the same table twice, so a new
-- HTTP source needed a migration of its own; now it needs none. The rows of both move here.
--
-- Ids: CoinGecko's rows keep theirs; CoinPaprika's get new ones after them (the two tables
-- numbered their rows independently), and the unified rows that point at them follow, so
-- `unified_crypto_data.raw_id` stays a plain reference to `raw_http.id` (or `raw_csv.id` for
-- file sources) and no row loses its lineage.

CREATE TABLE raw_http (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source            text        NOT NULL,
    run_id            bigint      NOT NULL REFERENCES etl_runs (id),
    fetched_at        timestamptz NOT NULL,
    coin_id           text        NOT NULL,
    source_updated_at timestamptz NOT NULL,
    payload           jsonb       NOT NULL,
    CONSTRAINT raw_http_locator UNIQUE (source, coin_id, source_updated_at)
);
COMMENT ON TABLE raw_http IS
    'Records of the HTTP sources as received; locator = (source, coin_id, the source''s own last_updated).';

INSERT INTO raw_http (id, source, run_id, fetched_at, coin_id, source_updated_at, payload)
OVERRIDING SYSTEM VALUE
SELECT id, 'coingecko', run_id, fetched_at, coin_id, source_updated_at, payload
FROM raw_coingecko;

SELECT setval(
    pg_get_serial_sequence('raw_http', 'id'),
    coalesce((SELECT max(id) FROM raw_http), 0) + 1,
    false
);

CREATE TEMP TABLE moved_coinpaprika ON COMMIT DROP AS
SELECT id AS old_id, nextval(pg_get_serial_sequence('raw_http', 'id')) AS new_id
FROM (SELECT id FROM raw_coinpaprika ORDER BY id) AS ordered;

INSERT INTO raw_http (id, source, run_id, fetched_at, coin_id, source_updated_at, payload)
OVERRIDING SYSTEM VALUE
SELECT m.new_id, 'coinpaprika', p.run_id, p.fetched_at, p.coin_id, p.source_updated_at, p.payload
FROM raw_coinpaprika AS p JOIN moved_coinpaprika AS m ON m.old_id = p.id;

UPDATE unified_crypto_data AS u SET raw_id = m.new_id
FROM moved_coinpaprika AS m
WHERE u.source = 'coinpaprika' AND u.raw_id = m.old_id;

DROP TABLE raw_coingecko, raw_coinpaprika;
