-- Hourly rollups: OHLC per (source, coin_id, UTC hour), exact for every observation that ever
-- arrived, kept forever (thinning, FULL_RESOLUTION_DAYS, may later drop all but the last
-- observation of an old hour; its rollup row keeps the hour's real open, high, low, close).
--
-- Kept by statement-level triggers with transition tables on unified_crypto_data, in the
-- writing transaction, whoever writes (the loader's upsert, a backfill, an operator's SQL):
--   INSERT  the new observations' hours are merged into their rows: extremes widen, open and
--           close follow the earliest and latest observation time, cap and volume the latest
--           observation that has one, count grows by the number of new observations;
--   UPDATE  (the upsert's "changed value") and DELETE: settled at commit (see below);
--   TRUNCATE empties the rollups too (a full reset).
-- Each `*_at` column is the observation time the value next to it came from; they make the
-- merge exact whatever order observations arrive in (late, out of order, in several batches).

CREATE TABLE unified_hourly (
    source     text             NOT NULL,
    coin_id    text             NOT NULL,
    hour       timestamptz      NOT NULL,
    open       double precision NOT NULL,
    open_at    timestamptz      NOT NULL,
    high       double precision NOT NULL,
    low        double precision NOT NULL,
    close      double precision NOT NULL,
    close_at   timestamptz      NOT NULL,
    market_cap double precision,
    cap_at     timestamptz,
    volume_24h double precision,
    volume_at  timestamptz,
    count      bigint           NOT NULL CHECK (count > 0),
    PRIMARY KEY (source, coin_id, hour)
);
COMMENT ON TABLE unified_hourly IS
    'Hourly OHLC per (source, coin_id, UTC hour) of every observation that arrived, kept forever.';

-- The rollup rows of a set of observations (one per source, coin and hour).
CREATE FUNCTION unified_hourly_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO unified_hourly AS h
        (source, coin_id, hour, open, open_at, high, low, close, close_at,
         market_cap, cap_at, volume_24h, volume_at, count)
    SELECT source, coin_id, date_trunc('hour', observed_at, 'UTC'),
           (array_agg(price_usd ORDER BY observed_at))[1], min(observed_at),
           max(price_usd), min(price_usd),
           (array_agg(price_usd ORDER BY observed_at DESC))[1], max(observed_at),
           (array_agg(market_cap ORDER BY observed_at DESC)
                FILTER (WHERE market_cap IS NOT NULL))[1],
           max(observed_at) FILTER (WHERE market_cap IS NOT NULL),
           (array_agg(volume_24h ORDER BY observed_at DESC)
                FILTER (WHERE volume_24h IS NOT NULL))[1],
           max(observed_at) FILTER (WHERE volume_24h IS NOT NULL),
           count(*)
    FROM new_rows
    GROUP BY 1, 2, 3
    ON CONFLICT (source, coin_id, hour) DO UPDATE SET
        open = CASE WHEN EXCLUDED.open_at < h.open_at THEN EXCLUDED.open ELSE h.open END,
        open_at = least(h.open_at, EXCLUDED.open_at),
        high = greatest(h.high, EXCLUDED.high),
        low = least(h.low, EXCLUDED.low),
        close = CASE WHEN EXCLUDED.close_at >= h.close_at THEN EXCLUDED.close ELSE h.close END,
        close_at = greatest(h.close_at, EXCLUDED.close_at),
        market_cap = CASE WHEN EXCLUDED.cap_at >= h.cap_at OR h.cap_at IS NULL
                          THEN coalesce(EXCLUDED.market_cap, h.market_cap)
                          ELSE h.market_cap END,
        cap_at = greatest(h.cap_at, EXCLUDED.cap_at),
        volume_24h = CASE WHEN EXCLUDED.volume_at >= h.volume_at OR h.volume_at IS NULL
                          THEN coalesce(EXCLUDED.volume_24h, h.volume_24h)
                          ELSE h.volume_24h END,
        volume_at = greatest(h.volume_at, EXCLUDED.volume_at),
        count = h.count + EXCLUDED.count;
    RETURN NULL;
END
$$;

-- UPDATE and DELETE are settled when the transaction commits, after every statement of it
-- (an upsert fires its UPDATE statement trigger before its INSERT one, so the hour is only
-- known whole once both ran). The statement triggers note the touched hours, with how many
-- observations the statement removed from and added to each and the new values' aggregate,
-- in `unified_hourly_pending`; a deferred constraint trigger on it settles them at commit:
--   an hour whose observations are all still stored (what is stored equals the rollup's
--   count, less what was removed, plus what was added) is recomputed from them: exact, a high
--   that is no longer true is lowered; nothing stored: its row goes;
--   a thinned hour keeps its history: an update's new values merge in like an insert's, a
--   delete leaves it as it was.
CREATE UNLOGGED TABLE unified_hourly_pending (
    xid        xid8             NOT NULL DEFAULT pg_current_xact_id(),
    source     text             NOT NULL,
    coin_id    text             NOT NULL,
    hour       timestamptz      NOT NULL,
    added      bigint           NOT NULL,
    removed    bigint           NOT NULL,
    open       double precision,
    open_at    timestamptz,
    high       double precision,
    low        double precision,
    close      double precision,
    close_at   timestamptz,
    market_cap double precision,
    cap_at     timestamptz,
    volume_24h double precision,
    volume_at  timestamptz
);
COMMENT ON TABLE unified_hourly_pending IS
    'Hours touched by an UPDATE or DELETE of unified_crypto_data, settled when it commits.';
CREATE INDEX unified_hourly_pending_xid ON unified_hourly_pending (xid);

CREATE FUNCTION unified_hourly_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO unified_hourly_pending
            (source, coin_id, hour, added, removed, open, open_at, high, low, close, close_at,
             market_cap, cap_at, volume_24h, volume_at)
        SELECT source, coin_id, date_trunc('hour', observed_at, 'UTC'), count(*), 0,
               (array_agg(price_usd ORDER BY observed_at))[1], min(observed_at),
               max(price_usd), min(price_usd),
               (array_agg(price_usd ORDER BY observed_at DESC))[1], max(observed_at),
               (array_agg(market_cap ORDER BY observed_at DESC)
                    FILTER (WHERE market_cap IS NOT NULL))[1],
               max(observed_at) FILTER (WHERE market_cap IS NOT NULL),
               (array_agg(volume_24h ORDER BY observed_at DESC)
                    FILTER (WHERE volume_24h IS NOT NULL))[1],
               max(observed_at) FILTER (WHERE volume_24h IS NOT NULL)
        FROM new_rows GROUP BY 1, 2, 3;
    END IF;
    INSERT INTO unified_hourly_pending (source, coin_id, hour, added, removed)
    SELECT source, coin_id, date_trunc('hour', observed_at, 'UTC'), 0, count(*)
    FROM old_rows GROUP BY 1, 2, 3;
    RETURN NULL;
END
$$;

-- Settles this transaction's pending hours (the first call does it all; one call per pending
-- row follows, finding nothing).
CREATE FUNCTION unified_hourly_settle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM unified_hourly_pending WHERE xid = pg_current_xact_id()) THEN
        RETURN NULL;
    END IF;
    IF to_regclass('pg_temp.unified_hourly_settling') IS NULL THEN
        CREATE TEMP TABLE unified_hourly_settling (
            source text, coin_id text, hour timestamptz, added bigint, removed bigint,
            open double precision, open_at timestamptz, high double precision,
            low double precision, close double precision, close_at timestamptz,
            market_cap double precision, cap_at timestamptz, volume_24h double precision,
            volume_at timestamptz, stored bigint, rolled bigint, complete boolean
        ) ON COMMIT DROP;
    END IF;
    WITH mine AS (
        DELETE FROM unified_hourly_pending WHERE xid = pg_current_xact_id() RETURNING *
    )
    INSERT INTO unified_hourly_settling
        (source, coin_id, hour, added, removed, open, open_at, high, low, close, close_at,
         market_cap, cap_at, volume_24h, volume_at)
    SELECT source, coin_id, hour, sum(added), sum(removed),
           (array_agg(open ORDER BY open_at) FILTER (WHERE open_at IS NOT NULL))[1],
           min(open_at), max(high), min(low),
           (array_agg(close ORDER BY close_at DESC) FILTER (WHERE close_at IS NOT NULL))[1],
           max(close_at),
           (array_agg(market_cap ORDER BY cap_at DESC) FILTER (WHERE cap_at IS NOT NULL))[1],
           max(cap_at),
           (array_agg(volume_24h ORDER BY volume_at DESC)
                FILTER (WHERE volume_at IS NOT NULL))[1],
           max(volume_at)
    FROM mine GROUP BY 1, 2, 3;
    UPDATE unified_hourly_settling AS t
       SET stored = (SELECT count(*) FROM unified_crypto_data AS u
                     WHERE u.source = t.source AND u.coin_id = t.coin_id
                       AND u.observed_at >= t.hour AND u.observed_at < t.hour + interval '1 hour'),
           rolled = coalesce((SELECT h.count FROM unified_hourly AS h
                              WHERE (h.source, h.coin_id, h.hour) = (t.source, t.coin_id, t.hour)),
                             0);
    UPDATE unified_hourly_settling
       SET complete = (rolled = 0 OR stored = rolled - removed + added);

    -- whole hours: recomputed, or removed when nothing is left in them
    DELETE FROM unified_hourly AS h USING unified_hourly_settling AS t
     WHERE (h.source, h.coin_id, h.hour) = (t.source, t.coin_id, t.hour) AND t.complete;
    INSERT INTO unified_hourly
        (source, coin_id, hour, open, open_at, high, low, close, close_at,
         market_cap, cap_at, volume_24h, volume_at, count)
    SELECT t.source, t.coin_id, t.hour, a.*
    FROM unified_hourly_settling AS t
    CROSS JOIN LATERAL (
        SELECT (array_agg(price_usd ORDER BY observed_at))[1], min(observed_at),
               max(price_usd), min(price_usd),
               (array_agg(price_usd ORDER BY observed_at DESC))[1], max(observed_at),
               (array_agg(market_cap ORDER BY observed_at DESC)
                    FILTER (WHERE market_cap IS NOT NULL))[1],
               max(observed_at) FILTER (WHERE market_cap IS NOT NULL),
               (array_agg(volume_24h ORDER BY observed_at DESC)
                    FILTER (WHERE volume_24h IS NOT NULL))[1],
               max(observed_at) FILTER (WHERE volume_24h IS NOT NULL),
               count(*)
        FROM unified_crypto_data AS u
        WHERE u.source = t.source AND u.coin_id = t.coin_id
          AND u.observed_at >= t.hour AND u.observed_at < t.hour + interval '1 hour'
    ) AS a
    WHERE t.complete AND t.stored > 0;

    -- thinned hours: an update's new values merge in (a delete's leave them as they were)
    UPDATE unified_hourly AS h SET
        open = CASE WHEN t.open_at < h.open_at THEN t.open ELSE h.open END,
        open_at = least(h.open_at, t.open_at),
        high = greatest(h.high, t.high),
        low = least(h.low, t.low),
        close = CASE WHEN t.close_at >= h.close_at THEN t.close ELSE h.close END,
        close_at = greatest(h.close_at, t.close_at),
        market_cap = CASE WHEN t.cap_at >= h.cap_at OR h.cap_at IS NULL
                          THEN coalesce(t.market_cap, h.market_cap) ELSE h.market_cap END,
        cap_at = greatest(h.cap_at, t.cap_at),
        volume_24h = CASE WHEN t.volume_at >= h.volume_at OR h.volume_at IS NULL
                          THEN coalesce(t.volume_24h, h.volume_24h) ELSE h.volume_24h END,
        volume_at = greatest(h.volume_at, t.volume_at)
    FROM unified_hourly_settling AS t
    WHERE (h.source, h.coin_id, h.hour) = (t.source, t.coin_id, t.hour)
      AND NOT t.complete AND t.open_at IS NOT NULL;
    TRUNCATE unified_hourly_settling;
    RETURN NULL;
END
$$;


CREATE FUNCTION unified_hourly_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE unified_hourly, unified_hourly_pending;
    RETURN NULL;
END
$$;

CREATE TRIGGER unified_hourly_insert AFTER INSERT ON unified_crypto_data
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unified_hourly_insert();
CREATE TRIGGER unified_hourly_update AFTER UPDATE ON unified_crypto_data
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unified_hourly_note();
CREATE TRIGGER unified_hourly_delete AFTER DELETE ON unified_crypto_data
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION unified_hourly_note();
CREATE CONSTRAINT TRIGGER unified_hourly_settle AFTER INSERT ON unified_hourly_pending
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION unified_hourly_settle();
CREATE TRIGGER unified_hourly_truncate AFTER TRUNCATE ON unified_crypto_data
    FOR EACH STATEMENT EXECUTE FUNCTION unified_hourly_truncate();

-- What is stored already.
INSERT INTO unified_hourly
    (source, coin_id, hour, open, open_at, high, low, close, close_at,
     market_cap, cap_at, volume_24h, volume_at, count)
SELECT source, coin_id, date_trunc('hour', observed_at, 'UTC'),
       (array_agg(price_usd ORDER BY observed_at))[1], min(observed_at),
       max(price_usd), min(price_usd),
       (array_agg(price_usd ORDER BY observed_at DESC))[1], max(observed_at),
       (array_agg(market_cap ORDER BY observed_at DESC) FILTER (WHERE market_cap IS NOT NULL))[1],
       max(observed_at) FILTER (WHERE market_cap IS NOT NULL),
       (array_agg(volume_24h ORDER BY observed_at DESC) FILTER (WHERE volume_24h IS NOT NULL))[1],
       max(observed_at) FILTER (WHERE volume_24h IS NOT NULL),
       count(*)
FROM unified_crypto_data
GROUP BY 1, 2, 3;
