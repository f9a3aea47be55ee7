package server

import (
	"context"
	"sort"
	"time"

	"gocloud.dev/secrets"
	"gocloud.dev/secrets/localsecrets"

	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/idvault/idvault/internal/config"
	"github.com/idvault/idvault/internal/fernet"
	"github.com/idvault/idvault/internal/keyring"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/idvault/idvault/internal/secret"
)

// ErrNoRootKey means no root key is configured and none may be generated.
var ErrNoRootKey = errors.New("no root key: set crypto.rootKey, crypto.rootKeys or crypto.kms, or run idvault init in dev mode")

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

// kmsOpeners maps a KMS URL scheme to its Go Cloud secrets opener. Only
// drivers listed here are compiled in.
var kmsOpeners = map[string]secrets.KeeperURLOpener{
	localsecrets.Scheme: &localsecrets.URLOpener{},
}

// rootKeys returns the configured root keys: crypto.rootKey (id "root"),
// crypto.rootKeys and crypto.kms, in that order. With none configured, dev
// mode reads every DataDir/keys/*.key (id: the file name without .key),
// generating keys/root.key when there is none and generate is set; it
// returns the path of a key it generated.
func (s *Server) rootKeys(ctx context.Context, generate bool) ([]keyring.KEK, string, error) {
	c := s.Config.Crypto
	var keks []keyring.KEK
	add := func(what, id string, ref secret.Ref) error {
		v, err := ref.Resolve()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		key, err := parseRootKey(v)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		kek, err := keyring.NewRootKey(id, key)
		clear(key)
		if err != nil {
			return err
		}
		keks = append(keks, kek)
		return nil
	}
	if c.RootKey != "" {
		if err := add("crypto.rootKey", "root", c.RootKey); err != nil {
			return nil, "", err
		}
	}
	for i, rk := range c.RootKeys {
		if err := add(fmt.Sprintf("crypto.rootKeys[%d]", i), rk.ID, rk.Key); err != nil {
			return nil, "", err
		}
	}
	mux := new(secrets.URLMux)
	for scheme, opener := range kmsOpeners {
		mux.RegisterKeeper(scheme, opener)
	}
	for i, km := range c.KMS {
		keeper, err := mux.OpenKeeper(ctx, km.URL)
		if err != nil {
			return nil, "", fmt.Errorf("crypto.kms[%d]: %w", i, err)
		}
		s.keepers = append(s.keepers, keeper)
		kek, err := keyring.NewKMSKey(km.ID, keeper)
		if err != nil {
			return nil, "", err
		}
		keks = append(keks, kek)
	}
	if len(keks) > 0 {
		return keks, "", nil
	}
	if s.Config.Mode != config.ModeDev {
		return nil, "", ErrNoRootKey
	}
	paths, err := filepath.Glob(filepath.Join(s.Config.DevKeyDir(), "*.key"))
	if err != nil {
		return nil, "", err
	}
	created := ""
	if len(paths) == 0 {
		if _, path, made, err := loadRootKey("", s.Config.DevRootKeyPath(), generate); err != nil {
			return nil, "", err
		} else if made {
			created = path
		}
		paths = []string{s.Config.DevRootKeyPath()}
	}
	sort.Strings(paths)
	for _, path := range paths {
		id := strings.TrimSuffix(filepath.Base(path), ".key")
		if err := add(path, id, secret.Ref("file:"+path)); err != nil {
			return nil, "", err
		}
	}
	return keks, created, nil
}

// NewDevRootKey generates a new dev-mode root key file in the data
// directory and returns its id. The running processes load it at their next
// start; `idvault keys rotate` makes it primary.
func NewDevRootKey(cfg config.Config, now time.Time) (string, error) {
	id := "k" + now.UTC().Format("20060102-150405")
	path := filepath.Join(cfg.DevKeyDir(), id+".key")
	if _, _, _, err := loadRootKey("", path, true); err != nil {
		return "", err
	}
	return id, nil
}

// fernetKeys resolves crypto.fernetKeys.
func fernetKeys(refs []secret.Ref) (fernet.Keys, error) {
	keys := make(fernet.Keys, 0, len(refs))
	for i, ref := range refs {
		v, err := ref.Resolve()
		if err != nil {
			return nil, fmt.Errorf("crypto.fernetKeys[%d]: %w", i, err)
		}
		k, err := fernet.ParseKey(strings.TrimSpace(string(v.Bytes())))
		if err != nil {
			return nil, fmt.Errorf("crypto.fernetKeys[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
