package auditlog_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/sqlitedb"
	"github.com/idvault/idvault/internal/store/sqlite"
)

// Example appends events, verifies the log and checks an inclusion proof
// with nothing but the public key.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "auditlog-example")
	defer func() { _ = os.RemoveAll(dir) }()
	db, _ := sqlitedb.Open(ctx, filepath.Join(dir, "idvault.db"))
	defer func() { _ = db.Close() }()
	backend, _ := sqlite.New(ctx, db)
	rootKey := make([]byte, 32)
	_, _ = rand.Read(rootKey)
	sealer, _ := barrier.NewAESGCM(rootKey)

	signerKey, verifierKey, _ := auditlog.GenerateKey("audit.example.com")
	signer, _ := note.NewSigner(signerKey)
	verifier, _ := note.NewVerifier(verifierKey)
	log, err := auditlog.New(backend, sealer, signer, auditlog.Options{Origin: "audit.example.com", Verifier: verifier})
	if err != nil {
		fmt.Println(err)
		return
	}

	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var batch []auditlog.Entry
	for i := range 3 {
		batch = append(batch, auditlog.Entry{
			Tenant: "acme", ID: fmt.Sprintf("evt-%d", i), Time: at.Add(time.Duration(i) * time.Second),
			Data:  []byte(fmt.Sprintf(`{"id":"evt-%d","action":"file.read"}`, i)),
			Index: map[string]string{auditlog.IndexAction: "file.read", auditlog.IndexOutcome: "success"},
		})
	}
	n, _ := log.Append(ctx, batch)
	n2, _ := log.Append(ctx, batch) // a redelivery appends nothing
	fmt.Println("appended", n, "then", n2)

	proof, _ := log.Prove(ctx, "acme", "evt-1")
	fmt.Println("proof checks:", auditlog.CheckInclusion(verifierKey, proof) == nil)

	rep, _ := log.Verify(ctx, "acme", auditlog.VerifyOptions{})
	fmt.Println("verified:", rep.Verified(), rep.Events, "events up to checkpoint", rep.Checkpoint.Size)
	// Output:
	// appended 3 then 0
	// proof checks: true
	// verified: true 3 events up to checkpoint 3
}
