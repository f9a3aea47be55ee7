package fernet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Version is the first byte of every Fernet token.
const Version = 0x80

// MaxClockSkew is how far in the future a token's timestamp may lie when
// Decrypt checks a TTL, as in the reference implementations.
const MaxClockSkew = 60 * time.Second

const (
	tsOffset  = 1
	ivOffset  = tsOffset + 8
	ctOffset  = ivOffset + aes.BlockSize
	macLen    = sha256.Size
	overhead  = ctOffset + macLen
	minLength = overhead + aes.BlockSize
	// maxCheckedTimestamp bounds the timestamps that Decrypt converts to a
	// time.Time; anything later is far in the future.
	maxCheckedTimestamp = 1 << 62
)

// ErrInvalidToken is the one error Decrypt returns for a token it cannot
// open: bad encoding, wrong version, wrong length, wrong key, a changed
// byte, bad padding. Callers get no detail on purpose.
var ErrInvalidToken = errors.New("fernet: invalid token")

// ErrExpired is returned for a token that is authentic (its HMAC is valid)
// but whose timestamp is outside the window a TTL allows: older than the TTL
// or more than MaxClockSkew ahead of now. errors.Is(ErrExpired,
// ErrInvalidToken) is true.
var ErrExpired = fmt.Errorf("%w: expired or from the future", ErrInvalidToken)

// tokenEncoding is the only token encoding accepted: base64url with padding
// and zero trailing bits, so each token has exactly one text form.
var tokenEncoding = base64.URLEncoding.Strict()

// Encrypt returns a Fernet token of plaintext under k, stamped with now
// (whole seconds) and a random IV from crypto/rand. now MUST NOT be before
// 1970. The caller may reuse plaintext afterwards.
func Encrypt(k Key, plaintext []byte, now time.Time) (string, error) {
	if k.d == nil {
		return "", fmt.Errorf("%w: zero Key", ErrInvalidKey)
	}
	ts := now.Unix()
	if ts < 0 {
		return "", fmt.Errorf("fernet: time %s is before 1970", now.UTC().Format(time.RFC3339))
	}
	var iv [aes.BlockSize]byte
	if _, err := rand.Read(iv[:]); err != nil {
		return "", fmt.Errorf("fernet: iv: %w", err)
	}
	return seal(k, plaintext, uint64(ts), iv), nil
}

// seal builds the token of plaintext under k with the given timestamp and
// IV. k MUST NOT be zero and iv MUST be fresh and random outside tests.
func seal(k Key, plaintext []byte, ts uint64, iv [aes.BlockSize]byte) string {
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	ctLen := len(plaintext) + pad
	b := make([]byte, overhead+ctLen)
	b[0] = Version
	binary.BigEndian.PutUint64(b[tsOffset:], ts)
	copy(b[ivOffset:], iv[:])
	ct := b[ctOffset : ctOffset+ctLen]
	copy(ct, plaintext)
	for i := len(plaintext); i < ctLen; i++ {
		ct[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(k.d.block, iv[:]).CryptBlocks(ct, ct)
	mac := hmac.New(sha256.New, k.d.signing)
	mac.Write(b[:ctOffset+ctLen])
	mac.Sum(b[:ctOffset+ctLen])
	return tokenEncoding.EncodeToString(b)
}

// Decrypt opens token with k and returns its plaintext, which the caller
// owns. With ttl > 0 it also rejects, with ErrExpired, a token made more than
// ttl before now or more than MaxClockSkew after now; with ttl <= 0 it ignores
// the timestamp and now. Every other failure is ErrInvalidToken, or
// ErrInvalidKey for a zero Key.
func Decrypt(k Key, token string, ttl time.Duration, now time.Time) ([]byte, error) {
	return Keys{k}.Decrypt(token, ttl, now)
}

// decode turns token into bytes and checks the version and length.
func decode(token string) ([]byte, error) {
	b := make([]byte, tokenEncoding.DecodedLen(len(token)))
	n, err := tokenEncoding.Decode(b, []byte(token))
	// The decoder skips '\r' and '\n'; a token holding them is longer than
	// the canonical spelling of its bytes.
	if err != nil || tokenEncoding.EncodedLen(n) != len(token) {
		return nil, ErrInvalidToken
	}
	b = b[:n]
	if n < minLength || (n-overhead)%aes.BlockSize != 0 || b[0] != Version {
		return nil, ErrInvalidToken
	}
	return b, nil
}

// verify reports, in constant time, whether the HMAC of decoded token b is
// valid under k.
func (k Key) verify(b []byte) bool {
	body := len(b) - macLen
	mac := hmac.New(sha256.New, k.d.signing)
	mac.Write(b[:body])
	var sum [macLen]byte
	return hmac.Equal(mac.Sum(sum[:0]), b[body:])
}

// fresh reports whether the timestamp of decoded token b lies in
// [now-ttl, now+MaxClockSkew], comparing whole seconds.
func fresh(b []byte, ttl time.Duration, now time.Time) bool {
	ts := binary.BigEndian.Uint64(b[tsOffset:])
	if ts > maxCheckedTimestamp {
		return false
	}
	made := time.Unix(int64(ts), 0)
	n := time.Unix(now.Unix(), 0)
	return !made.Add(ttl).Before(n) && !made.After(n.Add(MaxClockSkew))
}

// open decrypts the authenticated token b in place and strips its padding.
func (k Key) open(b []byte) ([]byte, error) {
	ct := b[ctOffset : len(b)-macLen]
	cipher.NewCBCDecrypter(k.d.block, b[ivOffset:ctOffset]).CryptBlocks(ct, ct)
	pad := int(ct[len(ct)-1])
	if pad == 0 || pad > aes.BlockSize {
		return nil, ErrInvalidToken
	}
	for _, c := range ct[len(ct)-pad:] {
		if int(c) != pad {
			return nil, ErrInvalidToken
		}
	}
	n := len(ct) - pad
	return ct[:n:n], nil
}

// Keys is a list of keys for rotation, like Python's MultiFernet: the first
// key encrypts, every key decrypts. A Keys value MUST NOT be changed while
// in use; it is then safe for concurrent use.
type Keys []Key

// Encrypt returns a token of plaintext under the first key, as the function
// Encrypt does. It fails with ErrInvalidKey if ks is empty.
func (ks Keys) Encrypt(plaintext []byte, now time.Time) (string, error) {
	if len(ks) == 0 {
		return "", fmt.Errorf("%w: no keys", ErrInvalidKey)
	}
	return Encrypt(ks[0], plaintext, now)
}

// Decrypt opens token with whichever key made it, checking ttl and now as
// the function Decrypt does. It fails with ErrInvalidToken if no key
// authenticates the token, and with ErrInvalidKey if ks is empty or holds a
// zero Key.
func (ks Keys) Decrypt(token string, ttl time.Duration, now time.Time) ([]byte, error) {
	b, k, err := ks.authenticate(token)
	if err != nil {
		return nil, err
	}
	if ttl > 0 && !fresh(b, ttl, now) {
		return nil, ErrExpired
	}
	return k.open(b)
}

// Rotate re-encrypts token under the first key with a fresh IV, keeping the
// token's original timestamp, like Python's MultiFernet.rotate. It does not
// check a TTL: an expired token stays expired after rotation. It fails as
// Decrypt does.
func (ks Keys) Rotate(token string) (string, error) {
	b, k, err := ks.authenticate(token)
	if err != nil {
		return "", err
	}
	ts := binary.BigEndian.Uint64(b[tsOffset:])
	plaintext, err := k.open(b)
	if err != nil {
		return "", err
	}
	var iv [aes.BlockSize]byte
	if _, err := rand.Read(iv[:]); err != nil {
		return "", fmt.Errorf("fernet: iv: %w", err)
	}
	return seal(ks[0], plaintext, ts, iv), nil
}

// authenticate decodes token and returns its bytes with the key whose HMAC
// matches.
func (ks Keys) authenticate(token string) ([]byte, Key, error) {
	if len(ks) == 0 {
		return nil, Key{}, fmt.Errorf("%w: no keys", ErrInvalidKey)
	}
	for i, k := range ks {
		if k.d == nil {
			return nil, Key{}, fmt.Errorf("%w: key %d is the zero Key", ErrInvalidKey, i)
		}
	}
	b, err := decode(token)
	if err != nil {
		return nil, Key{}, err
	}
	for _, k := range ks {
		if k.verify(b) {
			return b, k, nil
		}
	}
	return nil, Key{}, ErrInvalidToken
}
