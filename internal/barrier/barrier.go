// Package barrier holds the sealed-value formats of idvault and the
// primitives that make them: every record body, wrapped data key and
// admin-entered secret passes through here. Nothing else in idvault touches a
// cipher (a test enforces it).
//
// Threat model: the storage backend, its files and its backups are untrusted.
// A sealed value reveals nothing but its length; changing any byte, or moving
// it to another tenant, collection, record, field or key scope, makes Open
// fail.
//
// Wire format (all integers big-endian):
//
//	version (1 byte) | key id (4 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//
// Version 0x01 (VersionRoot) is sealed directly under a root key; the key id
// is the first four bytes of SHA-256 of the key. Version 0x02 (VersionData)
// is sealed under a data key (per tenant or per session) whose random key id
// is kept in its key record. The associated data is the 5-byte header
// followed by the place: tenant, collection, id, field and scope, each as a
// 4-byte length and its bytes. Nonces are random (crypto/rand); under one key
// that is safe for well over 2^32 seals.
package barrier

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Format versions: the first byte of every sealed value.
const (
	VersionRoot = 0x01
	VersionData = 0x02
)

const (
	headerLen = 1 + 4
	nonceLen  = 12
	// Overhead is the number of bytes Seal adds to a plaintext.
	Overhead = headerLen + nonceLen + 16
)

// ErrOpen is the one error Open returns for any value it cannot open: a wrong
// key, a flipped byte, a truncated value or a value moved from another place.
// Callers get no detail on purpose.
var ErrOpen = errors.New("barrier: cannot open sealed value")

// Place is where a sealed value lives. It is bound into every seal as
// associated data. Scope names the data key a value is sealed under: empty
// for the tenant's data key, a session id for that session's key.
type Place struct {
	Tenant     string
	Collection string
	ID         string
	Field      string
	Scope      string
}

// Barrier seals and opens values bound to their place. Implementations MUST be
// safe for concurrent use. ctx bounds any key lookup the barrier does.
type Barrier interface {
	Seal(ctx context.Context, p Place, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, p Place, sealed []byte) ([]byte, error)
}

// Header returns the version and key id of a sealed value, and false if it is
// too short to be one.
func Header(sealed []byte) (version byte, keyID uint32, ok bool) {
	if len(sealed) < Overhead {
		return 0, 0, false
	}
	return sealed[0], binary.BigEndian.Uint32(sealed[1:5]), true
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("barrier: key is %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func seal(version byte, keyID uint32, aead cipher.AEAD, p Place, plaintext []byte) ([]byte, error) {
	out := make([]byte, headerLen+nonceLen, Overhead+len(plaintext))
	out[0] = version
	binary.BigEndian.PutUint32(out[1:5], keyID)
	if _, err := rand.Read(out[headerLen:]); err != nil {
		return nil, fmt.Errorf("barrier: nonce: %w", err)
	}
	ad := associatedData(out[:headerLen], p)
	return aead.Seal(out, out[headerLen:headerLen+nonceLen], plaintext, ad), nil
}

func open(aead cipher.AEAD, p Place, sealed []byte) ([]byte, error) {
	ad := associatedData(sealed[:headerLen], p)
	plain, err := aead.Open(nil, sealed[headerLen:headerLen+nonceLen], sealed[headerLen+nonceLen:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

func associatedData(header []byte, p Place) []byte {
	ad := make([]byte, 0, len(header)+20+len(p.Tenant)+len(p.Collection)+len(p.ID)+len(p.Field)+len(p.Scope))
	ad = append(ad, header...)
	for _, s := range []string{p.Tenant, p.Collection, p.ID, p.Field, p.Scope} {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(s)))
		ad = append(ad, s...)
	}
	return ad
}

// AESGCM seals under root keys in the VersionRoot format: the first key
// seals; any key opens values it sealed. It wraps data keys and
// admin-entered secrets, and serves as a whole Barrier where no key
// hierarchy is wanted (tests). It is immutable and safe for concurrent use.
type AESGCM struct {
	primary uint32
	aeads   map[uint32]cipher.AEAD
}

var _ Barrier = (*AESGCM)(nil)

// KeyID returns the id under which a 32-byte root key appears in
// VersionRoot values.
func KeyID(key []byte) uint32 {
	sum := sha256.Sum256(key)
	return binary.BigEndian.Uint32(sum[:4])
}

// NewAESGCM returns a root-key sealer over the given 32-byte keys; keys[0] is
// the primary key. The keys are copied into the cipher state; the caller may
// wipe its slices afterwards.
func NewAESGCM(keys ...[]byte) (*AESGCM, error) {
	if len(keys) == 0 {
		return nil, errors.New("barrier: no root key")
	}
	b := &AESGCM{aeads: make(map[uint32]cipher.AEAD, len(keys))}
	for i, k := range keys {
		id := KeyID(k)
		if _, dup := b.aeads[id]; dup {
			return nil, fmt.Errorf("barrier: root key %d duplicates an earlier key", i)
		}
		aead, err := newAEAD(k)
		if err != nil {
			return nil, fmt.Errorf("barrier: root key %d: %w", i, err)
		}
		if i == 0 {
			b.primary = id
		}
		b.aeads[id] = aead
	}
	return b, nil
}

// Seal encrypts plaintext for place p under the primary key.
func (b *AESGCM) Seal(_ context.Context, p Place, plaintext []byte) ([]byte, error) {
	return seal(VersionRoot, b.primary, b.aeads[b.primary], p, plaintext)
}

// Open decrypts a value sealed for place p. Any failure returns ErrOpen.
func (b *AESGCM) Open(_ context.Context, p Place, sealed []byte) ([]byte, error) {
	version, id, ok := Header(sealed)
	if !ok || version != VersionRoot {
		return nil, ErrOpen
	}
	aead, ok := b.aeads[id]
	if !ok {
		return nil, ErrOpen
	}
	return open(aead, p, sealed)
}

// DataKey is one data key (DEK) in memory: it seals in the VersionData format
// under its random key id. It is immutable and safe for concurrent use.
type DataKey struct {
	id   uint32
	aead cipher.AEAD
}

// NewDataKey returns the data key with the given 32 bytes and id.
func NewDataKey(key []byte, id uint32) (*DataKey, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &DataKey{id: id, aead: aead}, nil
}

// GenerateDataKey returns 32 random bytes and a random key id for a new data
// key.
func GenerateDataKey() (key []byte, id uint32, err error) {
	buf := make([]byte, 36)
	if _, err := rand.Read(buf); err != nil {
		return nil, 0, fmt.Errorf("barrier: generate data key: %w", err)
	}
	return buf[:32], binary.BigEndian.Uint32(buf[32:]), nil
}

// ID returns the key id written into the values the key seals.
func (k *DataKey) ID() uint32 { return k.id }

// Seal encrypts plaintext for place p.
func (k *DataKey) Seal(p Place, plaintext []byte) ([]byte, error) {
	return seal(VersionData, k.id, k.aead, p, plaintext)
}

// Open decrypts a VersionData value sealed by this key for place p. Any
// failure returns ErrOpen.
func (k *DataKey) Open(p Place, sealed []byte) ([]byte, error) {
	version, id, ok := Header(sealed)
	if !ok || version != VersionData || id != k.id {
		return nil, ErrOpen
	}
	return open(k.aead, p, sealed)
}
