-- Hourly rollups (0013) that stay the size of their rows, and a cheaper insert trigger.
--
-- Size. A rollup row is written once and then updated by every later batch of its hour: at
-- 5-minute fetches, 11 times. With the table's pages filled to 100 % no update fitted in its
-- own page, so each one wrote the new row version on another page, with a new primary-key
-- entry, and left the old version dead until a VACUUM; measured (docs/benchmarks.md, "Scale"):
-- under 1 % of the updates were HOT, 84 % of the heap was free space nobody reused, 625 to
-- 1,680 bytes per row against 212 once compacted. With pages filled to half, the new version
-- of every row of a page fits in that same page: the update is HOT (no index entry), and the
-- next access prunes the old versions in the page, without VACUUM. Measured: 99.8 % of the
-- updates HOT, about 400 bytes per row, steady as the table grows.
-- Pages written before this migration keep their rows; only new pages are filled to half.
ALTER TABLE unified_hourly SET (fillfactor = 50);

-- Cost. The insert trigger sorted each (source, coin, hour) group three times over
-- (`array_agg(... ORDER BY observed_at DESC)` for close, cap and volume, besides the open's
-- ascending one); one ascending order for every aggregate lets PostgreSQL sort the statement's
-- rows once, and the last element is the latest. Same values: an observation's time is unique
-- per (source, coin_id), so first and last are never a tie.
CREATE OR REPLACE FUNCTION unified_hourly_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO unified_hourly AS h
        (source, coin_id, hour, open, open_at, high, low, close, close_at,
         market_cap, cap_at, volume_24h, volume_at, count)
    SELECT source, coin_id, hour, prices[1], open_at, high, low,
           prices[cardinality(prices)], close_at,
           caps[cardinality(caps)], cap_at, volumes[cardinality(volumes)], volume_at, count
    FROM (
        SELECT source, coin_id, date_trunc('hour', observed_at, 'UTC') AS hour,
               array_agg(price_usd ORDER BY observed_at) AS prices,
               min(observed_at) AS open_at, max(price_usd) AS high, min(price_usd) AS low,
               max(observed_at) AS close_at,
               array_agg(market_cap ORDER BY observed_at)
                   FILTER (WHERE market_cap IS NOT NULL) AS caps,
               max(observed_at) FILTER (WHERE market_cap IS NOT NULL) AS cap_at,
               array_agg(volume_24h ORDER BY observed_at)
                   FILTER (WHERE volume_24h IS NOT NULL) AS volumes,
               max(observed_at) FILTER (WHERE volume_24h IS NOT NULL) AS volume_at,
               count(*) AS count
        FROM new_rows
        GROUP BY 1, 2, 3
    ) AS g
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
