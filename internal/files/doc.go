// Package files stores document pages, selfies and attachments encrypted in a
// Go Cloud blob bucket (local directory, S3, Azure Blob, GCS).
//
// # Threat model
//
// The bucket, its files and its backups are untrusted: whoever can read them
// learns the object keys (location, tenant id, file id) and each file's size
// rounded to the DARE package layout, never a byte of content. Whoever can
// write them (ransomware, a manual edit, a restored stale backup) can delete
// objects but cannot change one without ReadAll noticing: a flipped,
// truncated, extended, reordered or replaced object, an object copied from
// another file, or metadata ([Sealed]) moved to another file or tenant is
// reported as [ErrTampered], and no byte of it is returned. The caller keeps
// [Sealed] in its own store record, which the barrier seals; this package
// trusts that record no more than the barrier does, because the record's
// wrapped key also commits to the file's sizes and digests (see below).
//
// # On-disk format
//
// An object's key is "<location>/<tenant>/<id>" (see [Ref]). Its content is
// the file encrypted with DARE 2.0 as implemented by github.com/minio/sio
// (the format minio uses for server-side encryption), restricted to version
// 2.0 and AES-256-GCM. The stream is a sequence of packages:
//
//	header (16 bytes) | ciphertext (1 to 65536 bytes) | GCM tag (16 bytes)
//
//	header = 0x20 | cipher suite 0x00 | payload length - 1 (uint16 LE) | nonce (12 bytes)
//
// The nonce is random per stream and repeated in every header; the top bit of
// its first byte marks the final package. Each package is sealed with the
// nonce whose last four bytes are XORed with the package sequence number (0,
// 1, 2, ...), and the first four header bytes are its associated data. Every
// package but the last holds exactly 64 KiB, so reordering, dropping or
// duplicating packages, or cutting the stream after a package, fails
// authentication. An empty file is stored as an empty object (zero packages):
// DARE cannot tell it from an object truncated to zero bytes, which is one
// reason ReadAll also checks the recorded sizes and digests.
//
// Every file has its own random 32-byte key (crypto/rand), so no two streams
// share a key. The key is stored only wrapped by the barrier, at
//
//	barrier.Place{Tenant: ref.Tenant, Collection: "files:" + location, ID: ref.ID, Field: "key"}
//
// and the wrapped plaintext (wrap format version 1, 105 bytes) is
//
//	0x01 | file key (32) | plaintext size (uint64 BE) | SHA-256 of plaintext (32) | SHA-256 of stored object (32)
//
// so a wrapped key only opens for the file and tenant it was made for, and
// only together with the sizes and digests recorded in the same [Sealed].
// Deleting the wrapped key (with its store record) shreds the file even where
// old copies of the object survive in backups.
//
// # Atomicity and durability
//
// Put streams: plaintext is never written to disk, neither in the bucket nor
// in a temporary file; only ciphertext reaches the blob writer. An object
// becomes visible only when Put succeeds. On any failure (a read error, more
// than maxBytes, a cancelled context) Put cancels the writer's context before
// closing it, which the gocloud.dev/blob contract defines as an abort
// (Bucket.NewWriter: "To abort a write, cancel ctx"): nothing is written, and
// an existing object under the same key is left as it was. Package filestest
// checks this, and the other bucket properties relied on here, per backend.
//
// For the local directory bucket of [localfs.Open], gocloud.dev/blob/fileblob
// (v0.47.0) writes each object to a temporary file and renames it over the
// key's path in Close; a cancelled writer's temporary file is removed instead
// (fileblob.go, writer.Close). localfs.Open sets NoTempDir so the temporary
// file "<path>.<hex>.tmp" lives next to its destination: the rename then never
// crosses a file system and is atomic, and ciphertext never lands in the
// shared os.TempDir. While a write is in flight its temporary name shows up in
// List; a crash mid-write can leave such a file behind (ciphertext only,
// safe to delete). Put calls Sync on the temporary file before the rename,
// but fileblob does not sync the directory, so after a power loss the newest
// objects may be missing (ReadAll reports ErrNotFound); never silently
// wrong.
//
// The server makes its Store with [LocalDir] for that bucket, and then Put
// skips the temporary file for a new object: it creates the object's own
// file exclusively (O_EXCL, mode 0600), writes the ciphertext, syncs and
// closes it, and removes it on any failure; ReadAll opens the file itself.
// That saves the blob driver's temporary file, rename, failed removal and
// metadata lookups (BenchmarkPut and BenchmarkReadAll compare both ways).
// What the directory holds is
// unchanged: the object's path is the one fileblob uses (a key holding
// "__0x", which fileblob escapes, goes through the bucket), so the bucket
// lists, finds and deletes the objects, and objects of either kind read
// back through both. An object that exists is replaced through the bucket's
// rename, as before. The difference is what a crash mid-write leaves: a
// partial object under the new key rather than under a temporary name.
// Nothing refers to it, as the caller records a file's Sealed only after
// Put returns, and keys are new ids; Stale lists it for the sweep like any
// unreferenced object.
//
// fileblob creates files with mode 0666 minus the process umask and has no
// option to change it. localfs.Open therefore creates the bucket directory and
// every subdirectory with mode 0700, so other local users cannot reach the
// (encrypted) objects; a directory that already exists keeps its mode.
package files
