-- Keep source_stats exact whoever writes unified_crypto_data (the loader, an operator's SQL,
-- a test): statement-level triggers with transition tables, so a bulk statement pays one
-- aggregate, not one trigger call per row.
--   row_count    = the number of unified rows of that source
--   data_version = bumped by every statement that inserts, updates or deletes its rows
-- The API reads both to report an exact `total` and to cache per data version.

CREATE FUNCTION source_stats_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO source_stats AS s (source, row_count, data_version, updated_at)
    SELECT source, count(*), 1, now() FROM new_rows GROUP BY source
    ON CONFLICT (source) DO UPDATE
        SET row_count = s.row_count + EXCLUDED.row_count,
            data_version = s.data_version + 1,
            updated_at = now();
    RETURN NULL;
END
$$;

CREATE FUNCTION source_stats_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE source_stats AS s
       SET row_count = s.row_count - d.n,
           data_version = s.data_version + 1,
           updated_at = now()
      FROM (SELECT source, count(*) AS n FROM old_rows GROUP BY source) AS d
     WHERE s.source = d.source;
    RETURN NULL;
END
$$;

CREATE FUNCTION source_stats_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- rows that moved between sources change both counts; every touched source gets a new version
    INSERT INTO source_stats AS s (source, row_count, data_version, updated_at)
    SELECT source, sum(delta), 1, now()
      FROM (SELECT source, 1 AS delta FROM new_rows
            UNION ALL
            SELECT source, -1 AS delta FROM old_rows) AS moved
     GROUP BY source
    ON CONFLICT (source) DO UPDATE
        SET row_count = s.row_count + EXCLUDED.row_count,
            data_version = s.data_version + 1,
            updated_at = now();
    RETURN NULL;
END
$$;

CREATE FUNCTION source_stats_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE source_stats SET row_count = 0, data_version = data_version + 1, updated_at = now();
    RETURN NULL;
END
$$;

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
