// Package tlsconf holds the TLS policy of the api role: the server
// configuration, certificate hot-reload, the optional client-certificate
// (mTLS) trust pool, and the self-signed certificate used in development mode.
//
// # Policy
//
// ServerConfig is the one place that decides what the server accepts:
//
//   - Versions: TLS 1.3 and TLS 1.2 only. SSLv3, TLS 1.0 and TLS 1.1 are
//     refused. When both sides speak TLS 1.3, TLS 1.3 is used.
//   - TLS 1.3 cipher suites are fixed by crypto/tls and all AEAD
//     (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305).
//   - TLS 1.2 cipher suites: only ECDHE key exchange (forward secrecy) with an
//     AEAD cipher — ECDHE-ECDSA and ECDHE-RSA with AES-128-GCM, AES-256-GCM or
//     ChaCha20-Poly1305. No CBC, no RC4, no 3DES, no static-RSA key exchange.
//   - Key exchange groups: the hybrid post-quantum X25519MLKEM768 and
//     SecP256r1MLKEM768 (TLS 1.3 only), then X25519 and P-256. The list is set
//     explicitly rather than left to the Go default so that a toolchain upgrade
//     cannot widen it silently; crypto/tls picks among them in its own order of
//     preference (hybrids first). GODEBUG=tlsmlkem=0 can still remove the
//     hybrids.
//   - ALPN: h2, then http/1.1.
//   - Renegotiation and compression: never (crypto/tls servers support
//     neither).
//   - mTLS: when a client CA pool is given, every client must present a
//     certificate that chains to it and whose extended key usage, if it has
//     one, allows clientAuth; otherwise the handshake fails.
//
// # Certificates and reload
//
// A Reloader serves the current certificate from an atomic pointer. Run polls
// the certificate and key files and Reload (for SIGHUP) reads them at once; a
// new pair is installed only when both files parse as a valid, matching pair.
// A half-written, broken or mismatched pair keeps the old certificate and
// logs a warning. New handshakes get the new certificate; open connections
// keep theirs. Change is detected by a SHA-256 hash of the two files' contents,
// not by modification time or size: cp -p, rsync -t and tar preserve
// modification times, and a same-size rewrite would escape a size check.
//
// Files are PEM: the certificate file holds the leaf first, then any
// intermediates; the key file holds one PKCS #1, PKCS #8 or SEC 1 private
// key. EnsureSelfSigned writes an ECDSA P-256 key in PKCS #8.
//
// # Threat model
//
// Protected: the confidentiality and integrity of API traffic (document images,
// selfies, credentials, tokens) against passive and active network attackers;
// downgrade to weak protocol versions or cipher suites; recording traffic today
// to decrypt it with a future quantum computer, for clients that negotiate a
// hybrid group; impersonation of internal services and clients when mTLS is on.
//
// Not protected: an attacker who can read the key file can impersonate the
// server, and one who can write the certificate and key files can replace
// them. A certificate authority that misissues is trusted like any other.
// Client certificates are not checked for revocation (no CRL or OCSP); revoke
// by removing the issuing CA from the pool, which takes a restart, since the
// client CA pool is fixed when the configuration is built. A self-signed
// development certificate authenticates nothing unless the client pins it or
// compares its fingerprint out of band.
//
// Logs never hold key material: they name files, certificate serial numbers,
// SHA-256 fingerprints, expiry times and crypto/tls error texts, which carry
// no key bytes.
//
// Key file permissions: a key file readable by group or others is logged as a
// warning, not refused. Kubernetes mounts secrets with mode 0644 unless
// defaultMode says otherwise, and refusing would break the most common
// deployment. Operators should set 0600 (or 0400/0440 with a matching
// group). On Windows the check is skipped.
package tlsconf
