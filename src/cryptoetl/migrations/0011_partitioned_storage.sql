-- Time-partitioned storage (docs/storage.md): the unified history by observed_at, the raw tables
-- by time, so old data leaves as whole partitions and a query's cost follows the time it reads.
--
--   unified_crypto_data   RANGE (observed_at)        weekly (Monday 00:00 UTC) for recent time,
--                                                    monthly, then yearly for older history
--   raw_http              RANGE (source_updated_at)  daily for recent time (the locator's time,
--                                                    so the locator stays unique), then coarser
--   raw_csv               RANGE (fetched_at)         daily; fetched_at is the time the file was
--                                                    first loaded (the loader keeps one per file),
--                                                    so (file, line) stays unique
--
-- Partitions are made by ensure_partitions(parent, lo, hi), the one way they are made: by this
-- migration for the data already stored and the weeks ahead, by the loader before each batch
-- (in its own short transaction, so the batch still commits with its cursor exactly once), and
-- by `cryptoetl maintain` ahead of time. A new partition is created as a plain table and then
-- ATTACHed, which locks the parent only in SHARE UPDATE EXCLUSIVE mode: loads and reads go on.
-- The unified history keeps a DEFAULT partition so that a row nobody made a partition for (an
-- operator's INSERT) is still stored; ensure_partitions moves such rows into the partition it
-- creates for them, so the default stays empty in normal operation. The raw tables have none:
-- only the loader writes them (after ensure_partitions), and without a default a retired day
-- can be detached CONCURRENTLY, without ever locking out the loads.
--
-- Upgrade in place: each table is renamed, rebuilt partitioned with the same ids, and the old
-- one dropped, in this one transaction (no row lost or duplicated; ids and raw_id links kept).
-- The new table is made LIKE the old one, so it has every column the old one had, in order.
-- Indexes are built after the rows are copied (faster than maintaining them row by row).

SET LOCAL maintenance_work_mem = '256MB';

-- The partitions of `parent` with their bounds, read from the catalog (never from names).
CREATE FUNCTION partition_bounds(parent regclass)
RETURNS TABLE (name text, lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT b.name, b.m[1]::timestamptz, b.m[2]::timestamptz
    FROM (
        SELECT c.relname::text AS name,
               regexp_match(pg_get_expr(c.relpartbound, c.oid),
                            'FROM \(''([^'']*)''\) TO \(''([^'']*)''\)') AS m
        FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = parent
    ) AS b
    WHERE b.m IS NOT NULL
    ORDER BY 2
$$;
COMMENT ON FUNCTION partition_bounds(regclass) IS
    'The range partitions of a table: name, lower bound (inclusive), upper bound (exclusive).';

-- The range a new partition holding time `t` should have, before it is fitted between the
-- partitions that exist: recent time in the table's fine unit (a week for the unified history,
-- a day for raw records) from two months back to five weeks ahead, the rest of this year by
-- month, older time (and time far ahead) by year, so a CSV of history back to
-- 2013 makes a dozen or two partitions, not hundreds.
CREATE FUNCTION partition_span(parent regclass, t timestamptz, now timestamptz,
                               OUT lo timestamptz, OUT hi timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    unit text;
BEGIN
    IF t > now + interval '35 days' THEN  -- far ahead: only an odd record goes there
        unit := 'year';
    ELSIF t >= date_trunc('month', now, 'UTC') - interval '2 months' THEN
        unit := CASE WHEN (SELECT relname FROM pg_class WHERE oid = parent) = 'unified_crypto_data'
                     THEN 'week' ELSE 'day' END;
    ELSIF t >= date_trunc('year', now, 'UTC') THEN
        unit := 'month';
    ELSE
        unit := 'year';
    END IF;
    lo := date_trunc(unit, t, 'UTC');
    hi := ((lo AT TIME ZONE 'UTC') + ('1 ' || unit)::interval) AT TIME ZONE 'UTC';
END
$$;

-- Make sure every instant of [lo, hi] (both included) has a partition of `parent`; returns the
-- number of partitions created. Missing ranges get partition_span's range, cut to fit between
-- the partitions that exist. Serialised per table by a transaction advisory lock, so two
-- loaders asking for the same week create it once. Rows of the range found in the DEFAULT
-- partition are moved into the new partition before it is attached.
CREATE FUNCTION ensure_partitions(parent regclass, lo timestamptz, hi timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    t         timestamptz;
    found_hi  timestamptz;
    prev_hi   timestamptz;
    next_lo   timestamptz;
    span      record;
    created   integer := 0;
    base      text;
    child     text;
    key       text;
    dflt      text;
BEGIN
    IF lo IS NULL OR hi IS NULL OR lo > hi THEN
        RETURN 0;
    END IF;
    SELECT c.relname, a.attname, d.relname INTO base, key, dflt
    FROM pg_partitioned_table AS p
    JOIN pg_class AS c ON c.oid = p.partrelid
    JOIN pg_attribute AS a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
    LEFT JOIN pg_class AS d ON d.oid = p.partdefid
    WHERE p.partrelid = parent;
    IF base IS NULL THEN
        RAISE EXCEPTION '% is not a partitioned table', parent;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('cryptoetl.partitions'), hashtext(base));
    t := lo;
    WHILE t <= hi LOOP
        SELECT b.hi INTO found_hi FROM partition_bounds(parent) AS b WHERE b.lo <= t AND t < b.hi;
        IF found_hi IS NOT NULL THEN
            t := found_hi;
            CONTINUE;
        END IF;
        span := partition_span(parent, t, now());
        SELECT max(b.hi) INTO prev_hi FROM partition_bounds(parent) AS b WHERE b.hi <= t;
        SELECT min(b.lo) INTO next_lo FROM partition_bounds(parent) AS b WHERE b.lo > t;
        span.lo := greatest(span.lo, prev_hi);
        span.hi := least(span.hi, next_lo);
        child := base || '_' || to_char(span.lo AT TIME ZONE 'UTC', 'YYYYMMDD');
        IF to_regclass(quote_ident(child)) IS NOT NULL THEN  -- a leftover of that name
            child := child || '_' || to_char(clock_timestamp(), 'HH24MISSUS');
        END IF;
        EXECUTE format(
            'CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
            ' INCLUDING STORAGE INCLUDING COMPRESSION)', child, base);
        IF dflt IS NOT NULL THEN
            EXECUTE format(
                'WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *)'
                ' INSERT INTO %I SELECT * FROM moved', dflt, key, key, child)
                USING span.lo, span.hi;
        END IF;
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       base, child, span.lo, span.hi);
        created := created + 1;
        t := span.hi;
    END LOOP;
    RETURN created;
END
$$;
COMMENT ON FUNCTION ensure_partitions(regclass, timestamptz, timestamptz) IS
    'Create the missing partitions so that every instant of [lo, hi] has one; returns how many.';

-- The identity of a table being rebuilt: the next id it would have handed out.
CREATE TEMP TABLE rebuilt_ids (name text PRIMARY KEY, next_id bigint NOT NULL) ON COMMIT DROP;
INSERT INTO rebuilt_ids
SELECT 'unified_crypto_data', greatest(
    (SELECT coalesce(max(id), 0) FROM unified_crypto_data),
    (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
       FROM unified_crypto_data_id_seq)) + 1
UNION ALL
SELECT 'raw_http', greatest(
    (SELECT coalesce(max(id), 0) FROM raw_http),
    (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM raw_http_id_seq)) + 1
UNION ALL
SELECT 'raw_csv', greatest(
    (SELECT coalesce(max(id), 0) FROM raw_csv),
    (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM raw_csv_id_seq)) + 1;

-- ---------------------------------------------------------------------------------------------
-- unified_crypto_data
ALTER TABLE unified_crypto_data RENAME TO unified_crypto_data_unpartitioned;
ALTER TABLE unified_crypto_data_unpartitioned ALTER COLUMN id DROP IDENTITY;
ALTER TABLE unified_crypto_data_unpartitioned
    RENAME CONSTRAINT unified_crypto_data_pkey TO unified_crypto_data_unpartitioned_pkey;
ALTER TABLE unified_crypto_data_unpartitioned DROP CONSTRAINT unified_observation;
DROP INDEX unified_coin_observed, unified_symbol, unified_observed;

CREATE TABLE unified_crypto_data (LIKE unified_crypto_data_unpartitioned
    INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION
    INCLUDING COMMENTS) PARTITION BY RANGE (observed_at);
ALTER TABLE unified_crypto_data ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
COMMENT ON TABLE unified_crypto_data IS
    'One row per (source, coin_id, observed_at); observed_at is the source''s own timestamp. '
    'Partitioned by observed_at (see partition_bounds).';
CREATE TABLE unified_crypto_data_default PARTITION OF unified_crypto_data DEFAULT;

SELECT ensure_partitions('unified_crypto_data', min(observed_at), max(observed_at))
FROM unified_crypto_data_unpartitioned;
SELECT ensure_partitions('unified_crypto_data', now() - interval '7 days', now() + interval '14 days');

INSERT INTO unified_crypto_data OVERRIDING SYSTEM VALUE
SELECT * FROM unified_crypto_data_unpartitioned;

DROP TABLE unified_crypto_data_unpartitioned;
SELECT setval(pg_get_serial_sequence('unified_crypto_data', 'id'),
              (SELECT next_id FROM rebuilt_ids WHERE name = 'unified_crypto_data'), false);

-- The primary key and the observation's unique key must hold the partition key. The API's
-- filters each get an index that also gives the `id` order of the default sort, so a coin's or
-- a symbol's first page reads a page of index entries per partition, not the coin's history.
ALTER TABLE unified_crypto_data ADD CONSTRAINT unified_crypto_data_pkey
    PRIMARY KEY (id, observed_at);
ALTER TABLE unified_crypto_data ADD CONSTRAINT unified_observation
    UNIQUE (source, coin_id, observed_at);
CREATE INDEX unified_coin_observed ON unified_crypto_data (coin_id, observed_at DESC, id DESC);
CREATE INDEX unified_coin_id ON unified_crypto_data (coin_id, id);
CREATE INDEX unified_symbol ON unified_crypto_data (lower(symbol), id);
CREATE INDEX unified_observed ON unified_crypto_data (observed_at DESC, id DESC);

CREATE TRIGGER source_stats_insert AFTER INSERT ON unified_crypto_data
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION source_stats_after_insert();
CREATE TRIGGER source_stats_delete AFTER DELETE ON unified_crypto_data
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION source_stats_after_delete();
CREATE TRIGGER source_stats_update AFTER UPDATE ON unified_crypto_data
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION source_stats_after_update();
CREATE TRIGGER source_stats_truncate AFTER TRUNCATE ON unified_crypto_data
    FOR EACH STATEMENT EXECUTE FUNCTION source_stats_after_truncate();

-- ---------------------------------------------------------------------------------------------
-- raw_http
ALTER TABLE raw_http RENAME TO raw_http_unpartitioned;
ALTER TABLE raw_http_unpartitioned ALTER COLUMN id DROP IDENTITY;
ALTER TABLE raw_http_unpartitioned RENAME CONSTRAINT raw_http_pkey TO raw_http_unpartitioned_pkey;
ALTER TABLE raw_http_unpartitioned DROP CONSTRAINT raw_http_locator;
ALTER TABLE raw_http_unpartitioned DROP CONSTRAINT raw_http_run_id_fkey;

CREATE TABLE raw_http (LIKE raw_http_unpartitioned
    INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION
    INCLUDING COMMENTS) PARTITION BY RANGE (source_updated_at);
ALTER TABLE raw_http ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
COMMENT ON TABLE raw_http IS
    'Records of the HTTP sources as received; locator = (source, coin_id, the source''s own '
    'last_updated). Partitioned by that time, retired by whole partitions (RAW_RETENTION_DAYS).';

SELECT ensure_partitions('raw_http', min(source_updated_at), max(source_updated_at))
FROM raw_http_unpartitioned;
SELECT ensure_partitions('raw_http', now() - interval '1 day', now() + interval '3 days');

INSERT INTO raw_http OVERRIDING SYSTEM VALUE SELECT * FROM raw_http_unpartitioned;

DROP TABLE raw_http_unpartitioned;
SELECT setval(pg_get_serial_sequence('raw_http', 'id'),
              (SELECT next_id FROM rebuilt_ids WHERE name = 'raw_http'), false);
ALTER TABLE raw_http ADD CONSTRAINT raw_http_pkey PRIMARY KEY (id, source_updated_at);
ALTER TABLE raw_http ADD CONSTRAINT raw_http_locator UNIQUE (source, coin_id, source_updated_at);
ALTER TABLE raw_http ADD CONSTRAINT raw_http_run_id_fkey
    FOREIGN KEY (run_id) REFERENCES etl_runs (id);

-- ---------------------------------------------------------------------------------------------
-- raw_csv
ALTER TABLE raw_csv RENAME TO raw_csv_unpartitioned;
ALTER TABLE raw_csv_unpartitioned ALTER COLUMN id DROP IDENTITY;
ALTER TABLE raw_csv_unpartitioned RENAME CONSTRAINT raw_csv_pkey TO raw_csv_unpartitioned_pkey;
ALTER TABLE raw_csv_unpartitioned
    DROP CONSTRAINT raw_csv_file_fingerprint_line_no_key,
    DROP CONSTRAINT raw_csv_run_id_fkey;

CREATE TABLE raw_csv (LIKE raw_csv_unpartitioned
    INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION
    INCLUDING COMMENTS) PARTITION BY RANGE (fetched_at);
ALTER TABLE raw_csv ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
COMMENT ON TABLE raw_csv IS
    'CSV rows as read (keyed by header); locator = (file fingerprint, line number). Partitioned '
    'by the time the file was first loaded, retired by whole partitions (RAW_RETENTION_DAYS).';

SELECT ensure_partitions('raw_csv', min(fetched_at), max(fetched_at)) FROM raw_csv_unpartitioned;
SELECT ensure_partitions('raw_csv', now() - interval '1 day', now() + interval '3 days');

INSERT INTO raw_csv OVERRIDING SYSTEM VALUE SELECT * FROM raw_csv_unpartitioned;

DROP TABLE raw_csv_unpartitioned;
SELECT setval(pg_get_serial_sequence('raw_csv', 'id'),
              (SELECT next_id FROM rebuilt_ids WHERE name = 'raw_csv'), false);
ALTER TABLE raw_csv ADD CONSTRAINT raw_csv_pkey PRIMARY KEY (id, fetched_at);
ALTER TABLE raw_csv ADD CONSTRAINT raw_csv_locator UNIQUE (file_fingerprint, line_no, fetched_at);
ALTER TABLE raw_csv ADD CONSTRAINT raw_csv_run_id_fkey
    FOREIGN KEY (run_id) REFERENCES etl_runs (id);

ANALYZE unified_crypto_data, raw_http, raw_csv;
