-- The review store, version 2: the queue's indexes. The queue filters by
-- status and orders by one sort key then case_id; with only
-- (status, assignee, score) SQLite found the status rows and sorted them
-- all (125 ms per page at 24k open cases, seconds at 1M). One index per
-- sort key led by status lets both databases walk the page in order and
-- stop after `limit` rows.
CREATE INDEX cases_queue_score ON cases (status, score, case_id);
CREATE INDEX cases_queue_updated ON cases (status, updated_us, case_id);
CREATE INDEX cases_queue_created ON cases (status, created_us, case_id);
CREATE INDEX cases_queue_window ON cases (status, window_end_us, case_id);
