-- The review store, version 3: the region-scoped queue. A scoped caller's
-- page walked the cases in score order and looked up each case's regions
-- (an index seek per case: ~100 ms per page when the region's cases rank
-- low among 800k). case_regions now carries its case's status and score
-- (kept in step by the store on every change of the case), so the walk
-- runs on one index of case_regions and reads the region from the index
-- entry itself.
ALTER TABLE case_regions ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
ALTER TABLE case_regions ADD COLUMN score DOUBLE PRECISION NOT NULL DEFAULT 0;
UPDATE case_regions SET status = (SELECT c.status FROM cases c WHERE c.case_id = case_regions.case_id), score = (SELECT c.score FROM cases c WHERE c.case_id = case_regions.case_id);
CREATE INDEX case_regions_queue ON case_regions (status, score, case_id, region);
