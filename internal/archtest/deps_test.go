// Package archtest holds repository-level tests of the architecture: which
// packages may depend on which.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/idvault/idvault"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func list(t *testing.T, patterns ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json=ImportPath,Imports,Deps"}, patterns...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestBackendsOnlyInWiring checks that only internal/server (and the
// backends' own tests) reach backend implementations: application packages
// depend on the interfaces, so a new backend plugs in without touching them.
func TestBackendsOnlyInWiring(t *testing.T) {
	backends := []string{
		module + "/internal/store/sqlite",
		module + "/internal/queue/sqlitequeue",
		module + "/internal/sqlitedb",
		"modernc.org/sqlite",
		"gocloud.dev/blob/fileblob",
		module + "/internal/files/localfs",
	}
	app := []string{"httpapi", "workflow", "scheduler", "session", "identity", "audit", "lease", "authz", "files", "media", "store", "queue", "barrier", "config"}
	for _, p := range list(t, prefixed(app)...) {
		for _, b := range backends {
			if slices.Contains(p.Deps, b) {
				t.Errorf("%s depends on backend %s; only internal/server may", p.ImportPath, b)
			}
		}
	}
}

// TestCryptoOnlyInBarrier checks that no package above the storage stack
// encrypts on its own: ciphers are used only by the barrier, the Fernet
// compatibility codec and the file format.
func TestCryptoOnlyInBarrier(t *testing.T) {
	allowed := map[string][]string{
		"crypto/aes":           {module + "/internal/barrier", module + "/internal/fernet"},
		"crypto/cipher":        {module + "/internal/barrier", module + "/internal/fernet"},
		"github.com/minio/sio": {module + "/internal/files"},
	}
	for _, p := range list(t, module+"/...") {
		for imp, who := range allowed {
			if slices.Contains(p.Imports, imp) && !slices.Contains(who, p.ImportPath) {
				t.Errorf("%s imports %s; only %v may", p.ImportPath, imp, who)
			}
		}
	}
}

func prefixed(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = module + "/internal/" + n
	}
	return out
}
