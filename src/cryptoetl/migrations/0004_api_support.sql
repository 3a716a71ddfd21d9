-- What the API needs from the schema.
--
-- 1. The finish time of each source's last run of a given status (health, stats) is one index
--    probe, however long the run history grows.
-- 2. Every change of source_stats (the unified table's row counts and data versions, kept by the
--    0002 triggers) is announced on the channel `cryptoetl_data_changed` when its transaction
--    commits. The API keeps the versions in memory and drops them on that signal, so a response
--    cached for a data version is served without asking the database whether the data changed.
--    One trigger call per statement, and PostgreSQL folds identical notifications of a
--    transaction into one.
--
-- Nothing is indexed on unified_crypto_data: its existing indexes serve /data (see the
-- README's API section), and every index there would slow every load.

CREATE INDEX etl_runs_source_status_finished ON etl_runs (source, status, finished_at DESC);

CREATE FUNCTION notify_data_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cryptoetl_data_changed', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER notify_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON source_stats
    FOR EACH STATEMENT EXECUTE FUNCTION notify_data_changed();
