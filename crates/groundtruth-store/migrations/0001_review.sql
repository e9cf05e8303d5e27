-- The review store, version 1. Written once for both backends: `{{id}}`
-- becomes an auto-increment primary key (SQLite INTEGER PRIMARY KEY
-- AUTOINCREMENT, PostgreSQL BIGSERIAL PRIMARY KEY). Integers are BIGINT
-- and times are epoch microseconds (UTC) in both, so one code path reads
-- them. Statements end with a semicolon at the end of a line.

-- A case groups the findings about one account or one group of accounts
-- of one app (case_key = hash of the app and the sorted accounts of the
-- finding that opened it).
CREATE TABLE cases (
    case_id {{id}},
    case_key TEXT NOT NULL UNIQUE,
    app_id TEXT NOT NULL,
    -- JSON array of the accounts of all its findings, sorted.
    accounts TEXT NOT NULL,
    n_accounts BIGINT NOT NULL,
    -- The unit most of its accounts belong to ('' when no event named one).
    region TEXT NOT NULL,
    -- JSON array of every unit its accounts belong to (also in case_regions).
    regions TEXT NOT NULL,
    -- open | needs_info | closed
    status TEXT NOT NULL,
    -- The last verdict: confirmed | dismissed | needs_info, or NULL.
    verdict TEXT,
    assignee TEXT,
    -- Highest score of its raised findings (of all, when none is raised).
    score DOUBLE PRECISION NOT NULL,
    -- Detectors of its raised findings, sorted, comma-separated.
    detectors TEXT NOT NULL,
    n_findings BIGINT NOT NULL,
    n_raised BIGINT NOT NULL,
    window_start_us BIGINT NOT NULL,
    window_end_us BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    -- Incremented by every change (optimistic concurrency for clients).
    version BIGINT NOT NULL
);
CREATE INDEX cases_by_score ON cases (score, case_id);
CREATE INDEX cases_by_updated ON cases (updated_us, case_id);
CREATE INDEX cases_by_created ON cases (created_us, case_id);
CREATE INDEX cases_by_window ON cases (window_end_us, case_id);
CREATE INDEX cases_by_status ON cases (status, assignee, score);

-- Scope: every region a case touches, so a region prefix filters in SQL.
CREATE TABLE case_regions (
    case_id BIGINT NOT NULL,
    region TEXT NOT NULL,
    -- How many of the case's accounts are in it (the most any finding said).
    accounts BIGINT NOT NULL,
    PRIMARY KEY (case_id, region)
);
CREATE INDEX case_regions_by_region ON case_regions (region, case_id);

CREATE TABLE case_accounts (
    case_id BIGINT NOT NULL,
    account_id TEXT NOT NULL,
    PRIMARY KEY (case_id, account_id)
);
CREATE INDEX case_accounts_by_account ON case_accounts (account_id, case_id);

-- Findings, upserted by finding_id; `body` is the contract JSON.
CREATE TABLE findings (
    finding_id TEXT PRIMARY KEY,
    case_id BIGINT NOT NULL,
    detector TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    window_start_us BIGINT NOT NULL,
    window_end_us BIGINT NOT NULL,
    -- Hash of detector, accounts, devices and patrols: "the same evidence".
    evidence_key TEXT NOT NULL,
    -- 1: in the review queue; 0: the same evidence was already decided.
    raised BIGINT NOT NULL,
    -- The verdict whose decision covers this evidence, when not raised.
    decided_by BIGINT,
    -- End of the detection window that produced this version: a later
    -- window's version replaces an earlier one, never the reverse.
    version_us BIGINT NOT NULL,
    body TEXT NOT NULL,
    first_seen_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL
);
CREATE INDEX findings_by_case ON findings (case_id);
CREATE INDEX findings_by_detector ON findings (detector, case_id);

-- Evidence an inspector has decided on (confirmed or dismissed): the same
-- evidence is not raised again.
CREATE TABLE decided_evidence (
    evidence_key TEXT PRIMARY KEY,
    verdict TEXT NOT NULL,
    verdict_id BIGINT NOT NULL,
    case_id BIGINT NOT NULL,
    at_us BIGINT NOT NULL
);
CREATE INDEX decided_evidence_by_case ON decided_evidence (case_id);

CREATE TABLE verdicts (
    verdict_id {{id}},
    case_id BIGINT NOT NULL,
    verdict TEXT NOT NULL,
    note TEXT NOT NULL,
    author TEXT NOT NULL,
    -- Detectors of the case's raised findings when it was decided.
    detectors TEXT NOT NULL,
    at_us BIGINT NOT NULL
);
CREATE INDEX verdicts_by_case ON verdicts (case_id, verdict_id);

CREATE TABLE notes (
    note_id {{id}},
    case_id BIGINT NOT NULL,
    author TEXT NOT NULL,
    text TEXT NOT NULL,
    at_us BIGINT NOT NULL
);
CREATE INDEX notes_by_case ON notes (case_id, note_id);

-- Append-only: who did what, when, the state before and after (JSON).
CREATE TABLE audit (
    audit_id {{id}},
    at_us BIGINT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    case_id BIGINT,
    before_json TEXT,
    after_json TEXT
);
CREATE INDEX audit_by_case ON audit (case_id, audit_id);
CREATE INDEX audit_by_actor ON audit (actor, audit_id);

-- Bearer tokens: only a SHA-256 of the secret is kept.
CREATE TABLE tokens (
    token_id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    role TEXT NOT NULL,
    region TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    expires_us BIGINT,
    revoked_us BIGINT
);
CREATE INDEX tokens_by_subject ON tokens (subject);
