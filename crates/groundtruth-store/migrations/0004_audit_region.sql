-- The review store, version 4: the audit log by region. Entries about a
-- case are found by the case's regions; entries about no case (an
-- analyst's query, a token created or revoked) carry the region they
-- concern (the analyst's scope, the token's scope), so the admin of a
-- region sees them too. NULL: only a nationwide admin sees the entry
-- (a failed sign-in under an unknown name). Earlier token entries take
-- their token's region; earlier queries stay nationwide-only (the scope
-- their caller held then was not recorded).
ALTER TABLE audit ADD COLUMN region TEXT;
UPDATE audit SET region = (SELECT t.region FROM tokens t WHERE t.token_id = audit.entity_id) WHERE entity = 'token';
CREATE INDEX audit_by_region ON audit (region, audit_id);
