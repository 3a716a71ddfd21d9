-- What the rejected-records listing (GET /api/v1/rejected and the /rejected page) needs.
--
-- The listing shows rejected records by the run that last met them, newest run first, and
-- within a run in the order they were stored (a CSV file's line order), optionally for one
-- source or one run, paged by keyset on (last_run_id DESC, id). Each of these indexes serves
-- one filter in exactly that order, so a page is an index range scan however large the table
-- grows:
--   no filter, or a run           -> rejected_by_run
--   a source (and maybe a run)    -> rejected_by_source_run
-- rejected_by_run also serves `last_run_id = $1 ORDER BY id` (one run's rejections, used by
-- GET /api/v1/runs/{id}), so the single-column index of 0001 is no longer needed.

CREATE INDEX rejected_by_run ON rejected_records (last_run_id DESC, id);
CREATE INDEX rejected_by_source_run ON rejected_records (source, last_run_id DESC, id);
DROP INDEX rejected_last_run;
