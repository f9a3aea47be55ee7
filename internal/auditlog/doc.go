// Package auditlog is the tamper-evident audit log of idvault: one
// append-only RFC 6962 Merkle tree log per tenant, kept in a store.Backend,
// with signed checkpoints (C2SP tlog-checkpoint bodies in
// golang.org/x/mod/sumdb/note signed notes, Ed25519), inclusion and
// consistency proofs that check offline with the public key alone, a
// verifier that names the first problem, filtered reading, and retention.
// Tree hashing, stored-hash layout, tiles and proofs are
// golang.org/x/mod/sumdb/tlog's.
//
// # Threat model
//
// An attacker who can read and write the database (or a backup restored
// over it) but holds neither the barrier keys nor the checkpoint signing key
// learns no event content (each event is sealed) and cannot change the log
// unnoticed: Verify names a deleted event (gap), a changed, replaced or
// unreadable event (edit), swapped or moved events (reorder), a cut tail
// (truncated, against any stored checkpoint or the head), a forged or
// altered checkpoint (bad-signature), each at its position. Such an
// attacker can always destroy the log (delete every record, or roll the
// whole database back to a backup): a rollback that also removes every
// later checkpoint is caught only by checkpoints kept outside the database,
// which is why auditors save checkpoints and pass them as
// VerifyOptions.Trusted, and why checkpoints should be published.
//
// An insider who also holds the barrier keys can rewrite an event
// consistently (new sealed leaf): the leaf hash stored when it was appended
// no longer matches (edit at its position); rewriting the stored hashes too
// makes every stored checkpoint after it disagree with the log (fork at the
// checkpoint's size). An insider who also holds the signing key can re-sign
// a rewritten history; only checkpoints saved before (Trusted, or any copy
// an auditor kept) catch that, as a fork. Signing two histories is
// provable: two validly signed checkpoints that no consistency proof joins.
//
// Personal data: Entry.Data (the canonical event) and Entry.Index are
// sealed inside the leaf. Clear in the database are only tenant ids, event
// ids, positions, batch event-time bounds, checkpoint latest-event times
// and record sizes. Inclusion proofs carry the event and go only to those
// who may read it; consistency proofs and checkpoints carry none.
//
// # Leaf
//
// Each event becomes one leaf, the bytes hashed into the tree (tlog
// RecordHash: SHA-256 of 0x00 and the leaf). Integers are big-endian;
// len32 x is x's length as a uint32 followed by its bytes:
//
//	0x01 | position uint64 | event time int64 (Unix ns) | len32 tenant | len32 event id |
//	count uint32 | count × (len32 name | len32 value), names ascending | len32 data
//
// The leaf binds the event to its tenant and position, so a leaf copied to
// another tenant or position is detected even though leaves of one tenant
// are all sealed for one place (below).
//
// # Storage layout
//
// Every body is sealed by the barrier; "place" is its barrier.Place.
//
//	auditlog.batch  tenant, id = first position (20 digits)
//	    one per append chunk (up to about store.MaxBatch events and
//	    4 MiB of events);
//	    index: end (position after the last, 20 digits), mintime, maxtime
//	    (event-time bounds, store.TimeFormat);
//	    body (framing in clear): per event, uint32 length | sealed leaf,
//	    each leaf sealed for place (tenant, "auditlog.leaf", "leaf", "leaf")
//	auditlog.id     tenant, id = event id; body: position (uint64) sealed
//	    for the record's place; makes appends idempotent and finds events
//	auditlog.tile   tenant, id = "L.NNNN…" (tile level, 20-digit index);
//	    body: the tile's hashes (tlog tiles of height 8, up to 256 × 32
//	    bytes; the last tile of a level grows in place)
//	auditlog.checkpoint  tenant, id = size (20 digits); index: cummax
//	    (latest event time up to size); body: JSON {note, maxTime}, note
//	    being the signed checkpoint
//	auditlog.head   tenant, id "head"; body: JSON {size, root, start,
//	    checkpoint, pending, maxTime}: the tree, the oldest retained
//	    position, the latest checkpoint's size, since when leaves wait
//	    unsigned
//	auditlog.tenant store.PlatformTenant, id = tenant: lists the logs
//
// One append chunk is one store.Apply: the batch, its id records, the new
// and grown tiles, the head (compare-and-swap on its version), a checkpoint
// when due and, for a new log, its tenant record. Hashes of the existing
// tree are read from tiles authenticated against the head's root
// (tlog.TileHashReader), so altered tiles stop appends. No event field is a
// clear index: on the embedded SQLite backend each clear index field cost
// more per event than the whole rest of an append.
//
// # Checkpoints
//
// A checkpoint is the note whose text is "<origin>\n<size>\n<base64 root>\n"
// with origin Options.Origin + "/" + tenant, signed by the log's key. Append
// signs one when CheckpointEvery or more leaves follow the latest; Tick
// signs one when leaves have waited CheckpointInterval; Prove signs one when
// none covers the event yet. Every checkpoint is kept until retention
// passes it, so consistency between any two retained ones can be proven.
// Checkpoint sizes are always batch boundaries.
//
// # Verification
//
// Verify starts at position S (VerifyOptions.From, else the head's start,
// 0 before any prune). It checks every stored checkpoint at or after S
// (body opens, signature by the log's key, origin, size = record id) and
// every trusted one (signature, origin); those that fail are bad-signature
// at their size. For S > 0 it loads the tree hashes of the first S leaves
// from the tiles, authenticated against the stored checkpoint of size S.
// Then it reads the batches in id order, event by event, expecting
// positions S, S+1, …: an event missing at p, or one holding another
// position's leaf, is a reorder if p's leaf is found later in the log and a
// gap otherwise; a leaf that does not open, does not parse or whose
// RecordHash differs from the level-0 tile hash stored for p is an edit.
// Each good leaf is added to the tree (tlog.StoredHashes over the at most
// 64 frontier hashes); whenever the tree reaches the size of a checkpoint,
// its root must equal the checkpoint's, else fork. At the end, a log
// shorter than the head's size or any valid checkpoint is truncated. The
// problem with the lowest position is reported (the scan's on ties).
//
// # Retention
//
// Prune(before) takes the newest checkpoint whose cummax is before
// `before`, records its size as the head's start, then deletes the batches
// and id records before it, the level-0 tiles wholly before the tile
// holding the start, and the older checkpoints. Level ≥ 1 tiles and the
// start's level-0 tile stay: they hold the hashes of the maximal subtrees
// before the start, which every proof and verification from the start on
// needs and which the start's checkpoint authenticates.
package auditlog
