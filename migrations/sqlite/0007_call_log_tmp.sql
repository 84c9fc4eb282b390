-- TEMPORARY (lead's branch): replaced by accounts-store's 0007 on merge.
CREATE TABLE sync_calls (
    account TEXT NOT NULL,
    action  TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX sync_calls_by_account ON sync_calls (account, action, sent_at);
