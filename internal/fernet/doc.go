// Package fernet reads and writes standard Fernet tokens
// (https://github.com/fernet/spec), the format that existing identity
// verification deployments used to encrypt fields under their "fernetKey".
// idvault uses it only to migrate such data in and, where a peer still
// expects it, to hand data back out.
//
// Fernet is a compatibility scheme. It is weaker than the AES-256-GCM
// barrier (internal/barrier) that protects everything idvault stores:
// encryption is AES-128, and a token binds no associated data, so a token
// copied from one record or field into another still decrypts. New data MUST
// be sealed by the barrier, not by this package.
//
// # Wire format
//
// A key is 32 bytes, written as base64url with padding (44 characters): the
// first 16 bytes are the HMAC-SHA256 signing key, the last 16 bytes the
// AES-128 encryption key. A token is the base64url encoding, with padding, of
// (integers big-endian):
//
//	0x80 | timestamp (8 bytes) | IV (16 bytes) | ciphertext | HMAC (32 bytes)
//
// The timestamp is the creation time in whole seconds since the Unix epoch,
// unsigned. The IV is random (crypto/rand). The ciphertext is the plaintext,
// padded with PKCS #7 to a multiple of 16 bytes (at least one block), under
// AES-128-CBC. The HMAC is HMAC-SHA256 under the signing key over all the
// bytes before it. A token is therefore 73 bytes or more before encoding,
// and its length reveals the plaintext length rounded up to 16 bytes.
//
// # Threat model
//
// Whoever can read or change tokens, but holds no key, can neither read a
// plaintext nor make or alter a token that decrypts. Decrypt checks the
// version byte, the length and the HMAC (in constant time) before it
// decrypts anything, so no padding oracle exists, and every malformed, forged
// or tampered token fails with the same ErrInvalidToken. Only a token whose
// HMAC is valid can fail with ErrExpired, which also matches
// ErrInvalidToken; callers that answer an untrusted party SHOULD report
// both the same way.
//
// Out of scope: the timestamp is in clear, so anyone can read when a token
// was made; a token can be replayed until its TTL runs out; a token moved to
// another record or field is not detected (no associated data); an attacker
// who can read process memory.
//
// # Time
//
// Decrypt with a TTL rejects a token whose timestamp plus the TTL lies
// before now, or whose timestamp lies more than MaxClockSkew after now, as
// the reference implementations do. Like them it compares whole seconds:
// now is truncated to the second first. Without a TTL (ttl <= 0) Decrypt
// does not look at the timestamp. The timestamp is covered by the HMAC, so
// only a key holder can choose it.
//
// # Key rotation
//
// Keys behaves like MultiFernet in the Python reference: the first key
// encrypts, every key decrypts, and Rotate re-encrypts a token under the
// first key while keeping its original timestamp, so its expiry does not
// move.
package fernet
