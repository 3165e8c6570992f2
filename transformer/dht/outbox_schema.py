"""The outbox file's tables: pending messages, their per-kind counts, dead letters.

The counts are kept by triggers inside SQLite, so they stay exact whatever
connection or process writes (the service, ``python -m transformer.dht.dead_letters``
re-sending from a shell), and a writer reads them inside its own transaction.
"""

from __future__ import annotations

from typing import Final

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic_name TEXT NOT NULL,
    topic_uuid TEXT NOT NULL,
    value TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('anomaly', 'result')),
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_topic_order ON outbox (topic_name, id);
CREATE INDEX IF NOT EXISTS outbox_kind_order ON outbox (kind, id);
CREATE TABLE IF NOT EXISTS outbox_counts (kind TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT OR IGNORE INTO outbox_counts (kind, n) VALUES ('anomaly', 0), ('result', 0);
CREATE TRIGGER IF NOT EXISTS outbox_counted_in AFTER INSERT ON outbox
BEGIN UPDATE outbox_counts SET n = n + 1 WHERE kind = NEW.kind; END;
CREATE TRIGGER IF NOT EXISTS outbox_counted_out AFTER DELETE ON outbox
BEGIN UPDATE outbox_counts SET n = n - 1 WHERE kind = OLD.kind; END;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    topic_name TEXT NOT NULL,
    topic_uuid TEXT NOT NULL,
    value TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at REAL NOT NULL,
    reason TEXT NOT NULL
);
"""
#: counts of a file written before the counts table existed (run once at open)
RECOUNT: Final = (
    "UPDATE outbox_counts SET n = (SELECT COUNT(*) FROM outbox WHERE outbox.kind = outbox_counts.kind)"
)
COLUMNS: Final = "id, topic_name, topic_uuid, value, kind, created_at, attempts, next_attempt_at"
#: the oldest row of each topic_name. The recursive walk visits one index entry per
#: topic (a loose index scan): a GROUP BY would read all rows, on every wake-up of
#: the sender, which is quadratic while a long backlog drains.
HEADS_QUERY: Final = f"""
WITH RECURSIVE topics(name) AS (
    SELECT MIN(topic_name) FROM outbox
    UNION ALL
    SELECT (SELECT MIN(topic_name) FROM outbox WHERE topic_name > topics.name)
    FROM topics WHERE topics.name IS NOT NULL
)
SELECT {COLUMNS} FROM outbox
WHERE id IN (
    SELECT (SELECT MIN(id) FROM outbox WHERE topic_name = topics.name)
    FROM topics WHERE topics.name IS NOT NULL
)
ORDER BY id
"""
