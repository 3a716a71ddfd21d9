-- CSV lineage without a jsonb copy of every accepted row (issue 16).
--
-- A CSV row's raw id is `file_id * 2^32 + line`: the file (one row per fingerprint, that is per
-- version of a file) and the line the row starts at. `csv_chunks` records each committed block
-- of a file: its lines and byte offsets (the raw text of any line can be read back from a kept
-- file), how many rows it accepted and rejected, and the number formats its columns followed.
-- Rejected rows keep their raw text in `rejected_records`, as before.
--
-- Rows loaded before this migration keep pointing at `raw_csv` (ids below 2^32, which an
-- identity column starting at 1 never reaches); `csv_row_lineage` reads both.

CREATE TABLE csv_files (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint   text        NOT NULL UNIQUE,
    path          text        NOT NULL,
    size          bigint      NOT NULL,
    mtime_ns      bigint      NOT NULL,
    first_run_id  bigint      NOT NULL REFERENCES etl_runs (id),
    first_seen_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE csv_files IS
    'One row per version of a CSV file (its fingerprint); unified raw_id = id * 2^32 + line.';

CREATE TABLE csv_chunks (
    file_id        bigint      NOT NULL REFERENCES csv_files (id),
    first_line     bigint      NOT NULL,
    last_line      bigint      NOT NULL,
    start_offset   bigint      NOT NULL,
    end_offset     bigint      NOT NULL,
    run_id         bigint      NOT NULL REFERENCES etl_runs (id),
    accepted       integer     NOT NULL,
    rejected       integer     NOT NULL,
    number_formats jsonb       NOT NULL DEFAULT '{}'::jsonb,
    committed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (file_id, first_line)
);
COMMENT ON TABLE csv_chunks IS
    'Each committed block of a CSV file: lines, byte offsets, counts, number formats followed.';

CREATE VIEW csv_row_lineage AS
SELECT u.id AS unified_id, f.fingerprint AS file_fingerprint, f.path AS file_path,
       u.raw_id % 4294967296 AS line_no, NULL::jsonb AS payload
FROM unified_crypto_data u
JOIN csv_files f ON f.id = u.raw_id / 4294967296
WHERE u.source = 'csv' AND u.raw_id >= 4294967296
UNION ALL
SELECT u.id, r.file_fingerprint, r.file_path, r.line_no, r.payload
FROM unified_crypto_data u
JOIN raw_csv r ON r.id = u.raw_id
WHERE u.source = 'csv' AND u.raw_id < 4294967296;
COMMENT ON VIEW csv_row_lineage IS
    'Every unified CSV row''s file and line (payload: the jsonb copy, for rows loaded before 0015).';
