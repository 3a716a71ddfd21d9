-- A transaction's pending hours are settled once at commit, not once per pending row.
--
-- Why. unified_hourly_settle (0013) is a deferred constraint trigger on unified_hourly_pending,
-- so it fires at commit once for every pending row the transaction wrote: one per (source,
-- coin, hour) its UPDATEs and DELETEs of unified_crypto_data touched. The first call settled
-- them all; each later one looked its transaction up in unified_hourly_pending_xid to find
-- nothing, walking every index entry of the rows the first call had deleted (they stay in the
-- index until the transaction ends). N pending rows cost N * N entries: a batch that rewrote
-- 8,000 hours took 20 s to commit; one rewriting 100,000 hours (a corrected daily history)
-- would have taken most of an hour.
--
-- Now the call that settles writes its transaction's id into a transaction-local setting,
-- `unified_hourly.settled`, and every later call of that transaction returns at once.
-- unified_hourly_note clears it whenever it writes pending rows, so hours noted after a
-- settlement (`SET CONSTRAINTS ALL IMMEDIATE` in the middle of a transaction, then more
-- writes) are settled by the next call in turn; it writes an update's old and new rows in one
-- statement, so that no settlement runs between them. What a settlement computes is unchanged.

CREATE OR REPLACE FUNCTION unified_hourly_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One INSERT per call (0013 had two for an UPDATE): under SET CONSTRAINTS IMMEDIATE the
    -- settlement runs at the end of each, and must see an update's old and new rows together.
    PERFORM set_config('unified_hourly.settled', '', true);
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
        FROM new_rows GROUP BY 1, 2, 3
        UNION ALL
        SELECT source, coin_id, date_trunc('hour', observed_at, 'UTC'), 0, count(*),
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
        FROM old_rows GROUP BY 1, 2, 3;
    ELSE
        INSERT INTO unified_hourly_pending (source, coin_id, hour, added, removed)
        SELECT source, coin_id, date_trunc('hour', observed_at, 'UTC'), 0, count(*)
        FROM old_rows GROUP BY 1, 2, 3;
    END IF;
    RETURN NULL;
END
$$;

-- Settles this transaction's pending hours: the first call does it all and says so in
-- `unified_hourly.settled`; the calls that follow (one per pending row) return at once.
CREATE OR REPLACE FUNCTION unified_hourly_settle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('unified_hourly.settled', true) = pg_current_xact_id()::text THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('unified_hourly.settled', pg_current_xact_id()::text, true);
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

