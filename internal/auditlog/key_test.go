package auditlog_test

import (
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/store"
)

// TestGenerateKeyName refuses names the signed-note format cannot carry,
// and makes keys that sign and verify for the others.
func TestGenerateKeyName(t *testing.T) {
	for _, bad := range []string{"", "has space", "a+b", "tab\there", "nl\n"} {
		if _, _, err := auditlog.GenerateKey(bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("GenerateKey(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	skey, vkey, err := auditlog.GenerateKey("id.example.com/audit")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.NewSigner(skey); err != nil {
		t.Errorf("NewSigner(generated) = %v", err)
	}
	if derived, err := auditlog.VerifierFromSigner(skey); err != nil || derived != vkey {
		t.Errorf("VerifierFromSigner(generated) = %q, %v; want %q", derived, err, vkey)
	}
}
