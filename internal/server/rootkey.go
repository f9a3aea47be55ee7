package server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/idvault/idvault/internal/secret"
)

// ErrNoRootKey means no root key is configured and none may be generated.
var ErrNoRootKey = errors.New("no root key: set crypto.rootKey, or run idvault init in dev mode")

// parseRootKey decodes a root key given as 64 hex digits or as base64 (standard
// or URL alphabet, padded or not) of exactly 32 bytes.
func parseRootKey(v secret.Value) ([]byte, error) {
	text := strings.TrimSpace(string(v.Bytes()))
	if len(text) == 64 {
		if k, err := hex.DecodeString(text); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(text); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	return nil, errors.New("root key must be 32 bytes, given as 64 hex digits or base64")
}

// loadRootKey resolves the configured root key reference; with an empty
// reference it reads the dev key file at path, generating it when generate is
// set. It reports whether it generated a key.
func loadRootKey(ref secret.Ref, path string, generate bool) (key []byte, keyPath string, created bool, err error) {
	if ref != "" {
		v, err := ref.Resolve()
		if err != nil {
			return nil, "", false, fmt.Errorf("crypto.rootKey: %w", err)
		}
		k, err := parseRootKey(v)
		if err != nil {
			return nil, "", false, fmt.Errorf("crypto.rootKey: %w", err)
		}
		return k, "", false, nil
	}
	v, err := secret.Resolve("file:" + path)
	if err == nil {
		k, err := parseRootKey(v)
		if err != nil {
			return nil, path, false, fmt.Errorf("%s: %w", path, err)
		}
		return k, path, false, nil
	}
	if _, statErr := os.Stat(path); !errors.Is(statErr, fs.ErrNotExist) || !generate {
		if errors.Is(statErr, fs.ErrNotExist) {
			return nil, path, false, ErrNoRootKey
		}
		return nil, path, false, fmt.Errorf("%s: %w", path, err)
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, path, false, fmt.Errorf("generate root key: %w", err)
	}
	if err := writeKeyFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n")); err != nil {
		return nil, path, false, err
	}
	return key, path, true, nil
}

// writeKeyFile writes data to path as a 0600 file atomically: a temporary
// file in the same directory is written and synced, then linked to path
// (failing if path exists, so a key is never overwritten), and the directory
// is synced. A crash leaves either no key file or a complete one.
func writeKeyFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".root.key-*")
	if err != nil {
		return fmt.Errorf("create root key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("write root key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("create root key file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync key directory: %w", err)
	}
	return errors.Join(d.Sync(), d.Close())
}
