package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters recommended by OWASP: 19 MiB of memory, 2 passes, one
// lane, 16-byte salt, 32-byte hash.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

// Password policy: MinPasswordLen to MaxPasswordBytes long, at least
// minDistinct different characters, and not containing the username.
const (
	MinPasswordLen   = 12
	MaxPasswordBytes = 1024
	minDistinct      = 5
)

// ErrWeakPassword means a password breaks the password policy.
var ErrWeakPassword = errors.New("identity: password does not meet the policy")

// CheckPassword applies the password policy to a new password of username.
func CheckPassword(username, password string) error {
	distinct := map[rune]bool{}
	for _, r := range password {
		distinct[r] = true
	}
	name := NormalizeUsername(username)
	switch {
	case utf8.RuneCountInString(password) < MinPasswordLen:
		return fmt.Errorf("%w: at least %d characters", ErrWeakPassword, MinPasswordLen)
	case len(password) > MaxPasswordBytes:
		return fmt.Errorf("%w: at most %d bytes", ErrWeakPassword, MaxPasswordBytes)
	case len(distinct) < minDistinct:
		return fmt.Errorf("%w: at least %d different characters", ErrWeakPassword, minDistinct)
	case len(name) >= 3 && strings.Contains(strings.ToLower(password), name):
		return fmt.Errorf("%w: must not contain the username", ErrWeakPassword)
	}
	return nil
}

// HashPassword returns the argon2id hash of password in PHC string format.
func HashPassword(password string) (string, error) {
	if utf8.RuneCountInString(password) < MinPasswordLen {
		return "", fmt.Errorf("password shorter than %d characters", MinPasswordLen)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// dummyHash is verified against when a user does not exist, so that a
// missing user costs the same time as a wrong password.
var dummyHash = fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
	base64.RawStdEncoding.EncodeToString(make([]byte, 16)), base64.RawStdEncoding.EncodeToString(make([]byte, 32)))

// VerifyPassword reports whether password matches the PHC-format argon2id
// hash. An empty hash (an unknown user) never matches but still costs one
// argon2id computation, so it takes as long as a wrong password; a malformed
// hash never matches.
func VerifyPassword(hash, password string) bool {
	if hash == "" {
		hash = dummyHash
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var memory, iterations uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &iterations, &threads); err != nil ||
		memory == 0 || memory > 1<<20 || iterations == 0 || iterations > 16 || threads == 0 {
		return false
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, iterations, memory, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1 && hash != dummyHash
}
