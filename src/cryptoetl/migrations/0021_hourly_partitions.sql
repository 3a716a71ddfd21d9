-- unified_hourly partitioned by hour, and compacted once a partition is closed
-- (docs/rollups.md, "Partitions and compaction").
--
-- Why. A rollup row is written once and updated by each later batch of its hour (11 times at
-- 5-minute fetches); at fillfactor 80 (0020) the updates stay HOT but the table keeps ~250-280
-- bytes per row, against ~211 for a freshly written, sorted copy of the same rows. Over a year
-- of the defaults (30 million rollup rows) that is about 2 GB. Partitioned by hour, an hour's
-- partition stops changing once its time is past, and `cryptoetl maintain` replaces it by a
-- sorted copy filled to 100 % (db/compaction.py), as thinning replaces old partitions of the
-- unified history.
--
-- Partitions: made by ensure_partitions (0011), the one way partitions are made: by month for
-- the current year and the last two months, by year for older history (a CSV back to 2013 makes
-- a dozen yearly partitions, not hundreds), with a DEFAULT partition that ensure_partitions
-- empties into the partition it makes, like the unified history's. The loader makes the
-- partitions of a batch's hours before the batch's transaction (partitions.ensure_for_batch);
-- a row no partition was made for (an operator's INSERT) still lands in the DEFAULT one.
-- Partitions are made with fillfactor 80 (a partitioned table has no fillfactor of its own).
--
-- Compaction's bookkeeping:
--   unified_hourly_compacted  one row per partition compacted: its bounds, rows, bytes
--                             before and after, when;
--   unified_hourly_writes     one row per (partition, transaction) that wrote a partition
--                             being or having been compacted, logged by a row trigger
--                             (unified_hourly_written) that compaction puts on the partition
--                             before copying it. A write the copy's snapshot does not see
--                             makes the swap give up (the copy is redone); a write after the
--                             swap marks the partition for compacting again.
--
-- Upgrade in place: the table is renamed, rebuilt partitioned, its rows copied in key order,
-- the old one dropped, in this one transaction (no row lost or duplicated). The trigger
-- functions of 0013/0018 name the table and keep working on the partitioned one; so do
-- unified_hourly_pending and its settlement, and thinning's roll-up of missing hours.

SET LOCAL maintenance_work_mem = '256MB';

-- 0011's span with the rollups' fine unit: a month (a week for the unified history, a day for
-- raw records).
CREATE OR REPLACE FUNCTION partition_span(parent regclass, t timestamptz, now timestamptz,
                                          OUT lo timestamptz, OUT hi timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    unit text;
BEGIN
    IF t > now + interval '35 days' THEN  -- far ahead: only an odd record goes there
        unit := 'year';
    ELSIF t >= date_trunc('month', now, 'UTC') - interval '2 months' THEN
        unit := CASE (SELECT relname FROM pg_class WHERE oid = parent)
                    WHEN 'unified_crypto_data' THEN 'week'
                    WHEN 'unified_hourly' THEN 'month'
                    ELSE 'day' END;
    ELSIF t >= date_trunc('year', now, 'UTC') THEN
        unit := 'month';
    ELSE
        unit := 'year';
    END IF;
    lo := date_trunc(unit, t, 'UTC');
    hi := ((lo AT TIME ZONE 'UTC') + ('1 ' || unit)::interval) AT TIME ZONE 'UTC';
END
$$;

-- 0011's ensure_partitions, unchanged but for the fill factor of the rollups' partitions.
CREATE OR REPLACE FUNCTION ensure_partitions(parent regclass, lo timestamptz, hi timestamptz)
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
        IF base = 'unified_hourly' THEN  -- rows updated in place while their hour is live (0020)
            EXECUTE format('ALTER TABLE %I SET (fillfactor = 80)', child);
        END IF;
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

-- ---------------------------------------------------------------------------------------------
-- unified_hourly
ALTER TABLE unified_hourly RENAME TO unified_hourly_unpartitioned;
ALTER TABLE unified_hourly_unpartitioned
    RENAME CONSTRAINT unified_hourly_pkey TO unified_hourly_unpartitioned_pkey;

CREATE TABLE unified_hourly (LIKE unified_hourly_unpartitioned
    INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION
    INCLUDING COMMENTS) PARTITION BY RANGE (hour);
COMMENT ON TABLE unified_hourly IS
    'Hourly OHLC per (source, coin_id, UTC hour) of every observation that arrived, kept forever. '
    'Partitioned by hour (see partition_bounds); closed partitions compacted by maintenance.';
CREATE TABLE unified_hourly_default PARTITION OF unified_hourly DEFAULT WITH (fillfactor = 80);

SELECT ensure_partitions('unified_hourly', min(hour), max(hour)) FROM unified_hourly_unpartitioned;
SELECT ensure_partitions('unified_hourly', now() - interval '1 day', now() + interval '14 days');

INSERT INTO unified_hourly
SELECT * FROM unified_hourly_unpartitioned ORDER BY source, coin_id, hour;

DROP TABLE unified_hourly_unpartitioned;
ALTER TABLE unified_hourly ADD CONSTRAINT unified_hourly_pkey PRIMARY KEY (source, coin_id, hour);

-- ---------------------------------------------------------------------------------------------
-- compaction's bookkeeping
CREATE TABLE unified_hourly_compacted (
    partition    text        NOT NULL,
    lo           timestamptz NOT NULL,
    hi           timestamptz NOT NULL,
    rows         bigint      NOT NULL,
    bytes_before bigint      NOT NULL,
    bytes_after  bigint      NOT NULL,
    compacted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lo, hi)
);
COMMENT ON TABLE unified_hourly_compacted IS
    'Partitions of unified_hourly replaced by a sorted copy filled to 100 % (maintenance).';

CREATE TABLE unified_hourly_writes (
    lo  timestamptz NOT NULL,
    hi  timestamptz NOT NULL,
    xid xid8        NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (lo, hi, xid)
);
COMMENT ON TABLE unified_hourly_writes IS
    'Transactions that wrote a unified_hourly partition under compaction or compacted.';

-- The trigger compaction puts on a partition (arguments: its bounds); one log row per writing
-- transaction, the rest of its rows find it there.
CREATE FUNCTION unified_hourly_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO unified_hourly_writes (lo, hi)
    VALUES (TG_ARGV[0]::timestamptz, TG_ARGV[1]::timestamptz)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION unified_hourly_written() IS
    'Logs a transaction writing a unified_hourly partition that compaction watches.';

ANALYZE unified_hourly;
