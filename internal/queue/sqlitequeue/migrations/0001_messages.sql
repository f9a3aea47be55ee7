-- queue_messages holds every message not yet acked, one row each. A row is
-- ready for delivery when available_at (unix nanoseconds) is not in the
-- future; a claim sets lease_token and pushes available_at to the end of the
-- visibility timeout, so a leased row is skipped until its lease runs out.
-- seq (the rowid) records publish order; id is the message id that consumers
-- see and that stays the same across redeliveries and dead-lettering.
CREATE TABLE queue_messages (
	seq INTEGER PRIMARY KEY,
	id TEXT NOT NULL UNIQUE,
	topic TEXT NOT NULL,
	body BLOB NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	available_at INTEGER NOT NULL,
	lease_token TEXT,
	created_at INTEGER NOT NULL
) STRICT;

-- Claims scan a topic in publish order and skip rows that are not ready.
CREATE INDEX queue_messages_topic ON queue_messages (topic, seq, available_at);

-- Leases that ran out on their last attempt are found here to be
-- dead-lettered.
CREATE INDEX queue_messages_leased ON queue_messages (available_at) WHERE lease_token IS NOT NULL;
