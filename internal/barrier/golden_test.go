package barrier

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// goldenPath holds sealed values of every format version, made once with
// fixed keys. Set IDVAULT_UPDATE_GOLDEN=1 to rewrite it, which is only
// right when a new format version is added: a value in it that stops
// opening means stored data would stop opening too.
var goldenPath = filepath.Join("testdata", "golden.json")

type goldenPlace struct {
	Tenant     string `json:"tenant"`
	Collection string `json:"collection"`
	ID         string `json:"id"`
	Field      string `json:"field"`
	Scope      string `json:"scope"`
}

type goldenValue struct {
	Name      string      `json:"name"`
	Version   byte        `json:"version"`
	Key       string      `json:"key"`
	KeyID     uint32      `json:"keyID"`
	Place     goldenPlace `json:"place"`
	Plaintext string      `json:"plaintext"`
	Sealed    string      `json:"sealed"`
}

type goldenFile struct {
	Comment string        `json:"comment"`
	Values  []goldenValue `json:"values"`
}

const (
	goldenRootKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	goldenDataKey = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
)

// goldenInputs are the values golden.json freezes, without their sealed
// bytes.
func goldenInputs(t *testing.T) []goldenValue {
	t.Helper()
	rootID := KeyID(mustHex(t, goldenRootKey))
	return []goldenValue{
		{Name: "root: admin secret", Version: VersionRoot, Key: goldenRootKey, KeyID: rootID,
			Place: goldenPlace{"t-0001", "webhooks", "w-0001", "secret", ""}, Plaintext: "whsec_golden"},
		{Name: "root: wrapped data key", Version: VersionRoot, Key: goldenRootKey, KeyID: rootID,
			Place: goldenPlace{"t-0001", "keys", "session:s-0001", "key", ""}, Plaintext: "32 bytes standing for a data key"},
		{Name: "root: empty plaintext", Version: VersionRoot, Key: goldenRootKey, KeyID: rootID,
			Place: goldenPlace{"_platform", "settings", "x", "body", ""}, Plaintext: ""},
		{Name: "data: tenant scope", Version: VersionData, Key: goldenDataKey, KeyID: 0x5eed0001,
			Place: goldenPlace{"t-0001", "users", "u-0001", "body", ""}, Plaintext: `{"username":"golden"}`},
		{Name: "data: session scope", Version: VersionData, Key: goldenDataKey, KeyID: 0x5eed0001,
			Place: goldenPlace{"t-0001", "sessions", "s-0001", "body", "s-0001"}, Plaintext: `{"status":"golden"}`},
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex.DecodeString(%q) = %v", s, err)
	}
	return b
}

func (g goldenValue) place() Place {
	return Place{Tenant: g.Place.Tenant, Collection: g.Place.Collection, ID: g.Place.ID, Field: g.Place.Field, Scope: g.Place.Scope}
}

// sealGolden seals g under its fixed key, in its format.
func sealGolden(t *testing.T, g goldenValue) []byte {
	t.Helper()
	key := mustHex(t, g.Key)
	var (
		sealed []byte
		err    error
	)
	switch g.Version {
	case VersionRoot:
		var b *AESGCM
		if b, err = NewAESGCM(key); err == nil {
			sealed, err = b.Seal(context.Background(), g.place(), []byte(g.Plaintext))
		}
	case VersionData:
		var k *DataKey
		if k, err = NewDataKey(key, g.KeyID); err == nil {
			sealed, err = k.Seal(g.place(), []byte(g.Plaintext))
		}
	default:
		t.Fatalf("golden %q: unknown version %#x", g.Name, g.Version)
	}
	if err != nil {
		t.Fatalf("golden %q: seal: %v", g.Name, err)
	}
	return sealed
}

func writeGolden(t *testing.T) {
	t.Helper()
	f := goldenFile{Comment: "Sealed values of every barrier format version, made once with fixed keys (see golden_test.go). Never regenerate to make a test pass: stored data would no longer open."}
	for _, g := range goldenInputs(t) {
		g.Sealed = hex.EncodeToString(sealGolden(t, g))
		f.Values = append(f.Values, g)
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenPath, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// documentedOpen opens a golden value with the standard library alone,
// following the wire format in the package doc, so that the format itself
// is frozen and not only this package's reading of it.
func documentedOpen(key, sealed []byte, p Place) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	ad := bytes.Clone(sealed[:5])
	for _, s := range []string{p.Tenant, p.Collection, p.ID, p.Field, p.Scope} {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(s)))
		ad = append(ad, s...)
	}
	return aead.Open(nil, sealed[5:17], sealed[17:], ad)
}

func TestGolden(t *testing.T) {
	if os.Getenv("IDVAULT_UPDATE_GOLDEN") == "1" {
		writeGolden(t)
	}
	raw, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("read %s: %v (IDVAULT_UPDATE_GOLDEN=1 writes it)", goldenPath, err)
	}
	var f goldenFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("parse %s: %v", goldenPath, err)
	}
	versions := map[byte]bool{}
	for _, g := range f.Values {
		versions[g.Version] = true
		t.Run(g.Name, func(t *testing.T) {
			key, sealed, plain, p := mustHex(t, g.Key), mustHex(t, g.Sealed), []byte(g.Plaintext), g.place()
			if len(sealed) != len(plain)+Overhead {
				t.Errorf("len(sealed) = %d, want %d", len(sealed), len(plain)+Overhead)
			}
			if sealed[0] != g.Version {
				t.Errorf("version byte = %#x, want %#x", sealed[0], g.Version)
			}
			if id := binary.BigEndian.Uint32(sealed[1:5]); id != g.KeyID {
				t.Errorf("key id bytes = %#x, want %#x", id, g.KeyID)
			}
			if v, id, ok := Header(sealed); v != g.Version || id != g.KeyID || !ok {
				t.Errorf("Header() = %#x, %#x, %v, want %#x, %#x, true", v, id, ok, g.Version, g.KeyID)
			}
			if got, err := documentedOpen(key, sealed, p); err != nil || !bytes.Equal(got, plain) {
				t.Errorf("open by the documented format = %q, %v, want %q", got, err, plain)
			}
			moved := p
			moved.ID += "x"
			var open func(Place) ([]byte, error)
			switch g.Version {
			case VersionRoot:
				if id := KeyID(key); id != g.KeyID {
					t.Errorf("KeyID(key) = %#x, want %#x", id, g.KeyID)
				}
				b, err := NewAESGCM(key)
				if err != nil {
					t.Fatal(err)
				}
				open = func(p Place) ([]byte, error) { return b.Open(context.Background(), p, sealed) }
			case VersionData:
				k, err := NewDataKey(key, g.KeyID)
				if err != nil {
					t.Fatal(err)
				}
				open = func(p Place) ([]byte, error) { return k.Open(p, sealed) }
			default:
				t.Fatalf("unknown version %#x", g.Version)
			}
			if got, err := open(p); err != nil || !bytes.Equal(got, plain) {
				t.Errorf("Open() = %q, %v, want %q, nil", got, err, plain)
			}
			if _, err := open(moved); !errors.Is(err, ErrOpen) {
				t.Errorf("Open(%v) error = %v, want ErrOpen", moved, err)
			}
		})
	}
	for _, v := range []byte{VersionRoot, VersionData} {
		if !versions[v] {
			t.Errorf("%s has no value of version %#x", goldenPath, v)
		}
	}
}
