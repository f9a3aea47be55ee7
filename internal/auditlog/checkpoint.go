package auditlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/idvault/idvault/internal/store"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a parsed, signature-checked checkpoint: the log of Origin
// had Size leaves with tree hash Root.
type Checkpoint struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Root   tlog.Hash `json:"root"`
}

var errMalformedCheckpoint = errors.New("auditlog: malformed checkpoint")

// formatCheckpoint returns the C2SP tlog-checkpoint body of a tree.
func formatCheckpoint(origin string, size int64, root tlog.Hash) string {
	return origin + "\n" + strconv.FormatInt(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
}

// parseCheckpoint parses a checkpoint body: exactly the three lines origin,
// size (canonical decimal) and base64 root hash, each ending in a newline.
func parseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) != 4 || lines[3] != "" || lines[0] == "" {
		return Checkpoint{}, errMalformedCheckpoint
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, errMalformedCheckpoint
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return Checkpoint{}, errMalformedCheckpoint
	}
	return Checkpoint{Origin: lines[0], Size: size, Root: tlog.Hash(root)}, nil
}

// openCheckpoint checks the signature of a signed checkpoint note with v
// and parses its body.
func openCheckpoint(signed []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("open checkpoint: %w", err)
	}
	// note accepts base64 with stray padding bits; accept only the one
	// encoding of each signature, so that no changed byte passes.
	for _, sig := range append(n.Sigs, n.UnverifiedSigs...) {
		if _, err := base64.StdEncoding.Strict().DecodeString(sig.Base64); err != nil {
			return Checkpoint{}, fmt.Errorf("open checkpoint: signature of %s is not canonical base64", sig.Name)
		}
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("open checkpoint: %w", err)
	}
	return cp, nil
}

// unverifiedSize returns the size a checkpoint note claims, without checking
// its signature, and false if it has none; it only names the position of a
// checkpoint that failed to verify.
func unverifiedSize(signed []byte) (int64, bool) {
	text, _, ok := strings.Cut(string(signed), "\n\n")
	if !ok {
		return 0, false
	}
	cp, err := parseCheckpoint(text + "\n")
	return cp.Size, err == nil
}

// originOf returns the checkpoint origin of tenant's log.
func originOf(prefix, tenant string) string { return prefix + "/" + tenant }

// GenerateKey returns a new Ed25519 note key pair named name: the signer key
// (private, "PRIVATE+KEY+name+hash+key"; keep it in a secret store) and the
// verifier key (public, "name+hash+key"), in golang.org/x/mod/sumdb/note
// encoding.
func GenerateKey(name string) (signerKey, verifierKey string, err error) {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r == '+' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "", "", fmt.Errorf("auditlog: generate key: name %q must be non-empty without spaces, control characters or '+': %w", name, store.ErrInvalid)
	}
	s, v, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("auditlog: generate key: %w", err)
	}
	return s, v, nil
}

// VerifierFromSigner returns the verifier (public) key of a note signer key.
func VerifierFromSigner(signerKey string) (string, error) {
	if _, err := note.NewSigner(signerKey); err != nil {
		return "", fmt.Errorf("auditlog: signer key: %w", err)
	}
	// NewSigner accepted it: PRIVATE+KEY+name+hash+base64(0x01 | seed).
	parts := strings.SplitN(signerKey, "+", 5)
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize {
		return "", errors.New("auditlog: signer key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return "", fmt.Errorf("auditlog: signer key: %w", err)
	}
	return vkey, nil
}

// InclusionProof proves that one event is in a tenant's log: Leaf is the
// leaf at position Index of the tree that the signed checkpoint note
// Checkpoint commits to, and Hashes is the RFC 6962 audit path. It holds the
// event's data, which is personal data: hand it only to whom may read the
// event.
type InclusionProof struct {
	Tenant     string      `json:"tenant"`
	Index      int64       `json:"index"`
	Leaf       []byte      `json:"leaf"`
	Checkpoint string      `json:"checkpoint"`
	Hashes     []tlog.Hash `json:"hashes"`
}

// ConsistencyProof proves that a tenant's log at checkpoint New contains its
// log at checkpoint Old as a prefix (the log only grew). Old and New are
// signed checkpoint notes; Hashes is the RFC 6962 consistency proof.
type ConsistencyProof struct {
	Tenant string      `json:"tenant"`
	Old    string      `json:"old"`
	New    string      `json:"new"`
	Hashes []tlog.Hash `json:"hashes"`
}

// ErrProof is the error of CheckInclusion and CheckConsistency for a proof
// that does not hold.
var ErrProof = errors.New("auditlog: proof does not verify")

// openProofCheckpoint checks a checkpoint of a proof for tenant's log.
func openProofCheckpoint(signed string, v note.Verifier, tenant string) (Checkpoint, error) {
	cp, err := openCheckpoint([]byte(signed), v)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrProof, err)
	}
	if !strings.HasSuffix(cp.Origin, "/"+tenant) {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint origin %q is not tenant %q's log", ErrProof, cp.Origin, tenant)
	}
	return cp, nil
}

// CheckInclusion checks an inclusion proof offline, with the verifier key
// alone: the checkpoint is signed by that key for the proof's tenant, the
// leaf names that tenant and the proof's position, and the audit path leads
// from the leaf hash to the checkpoint's root. Any failure wraps ErrProof.
func CheckInclusion(verifierKey string, p InclusionProof) error {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return fmt.Errorf("auditlog: verifier key: %w", err)
	}
	cp, err := openProofCheckpoint(p.Checkpoint, v, p.Tenant)
	if err != nil {
		return err
	}
	lf, err := ParseLeaf(p.Leaf)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProof, err)
	}
	if lf.Tenant != p.Tenant || lf.Position != p.Index {
		return fmt.Errorf("%w: leaf of tenant %q position %d, proof for %q position %d", ErrProof, lf.Tenant, lf.Position, p.Tenant, p.Index)
	}
	if p.Index < 0 || p.Index >= cp.Size {
		return fmt.Errorf("%w: position %d not in a log of %d", ErrProof, p.Index, cp.Size)
	}
	if err := tlog.CheckRecord(p.Hashes, cp.Size, cp.Root, p.Index, tlog.RecordHash(p.Leaf)); err != nil {
		return fmt.Errorf("%w: %w", ErrProof, err)
	}
	return nil
}

// CheckConsistency checks a consistency proof offline, with the verifier key
// alone: both checkpoints are signed by that key for the proof's tenant, and
// the log at New holds the log at Old as a prefix. Any failure wraps
// ErrProof.
func CheckConsistency(verifierKey string, p ConsistencyProof) error {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return fmt.Errorf("auditlog: verifier key: %w", err)
	}
	old, err := openProofCheckpoint(p.Old, v, p.Tenant)
	if err != nil {
		return err
	}
	cur, err := openProofCheckpoint(p.New, v, p.Tenant)
	if err != nil {
		return err
	}
	if old.Origin != cur.Origin {
		return fmt.Errorf("%w: checkpoints of two logs (%q, %q)", ErrProof, old.Origin, cur.Origin)
	}
	if err := tlog.CheckTree(p.Hashes, cur.Size, cur.Root, old.Size, old.Root); err != nil {
		return fmt.Errorf("%w: %w", ErrProof, err)
	}
	return nil
}
