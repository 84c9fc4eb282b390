-- Coverage and freshness per stream: how far data is final (a hole stops it), what is still open or missing,
-- how old the last fetch is.
SELECT stream, settled_through, provisional_windows, failed_windows, missing_buckets, points, last_run_at,
       round((julianday('now') - julianday(last_run_at)) * 24.0, 1) AS hours_since_last_fetch
FROM sync_coverage
ORDER BY stream;
