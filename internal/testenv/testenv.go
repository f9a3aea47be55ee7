// Package testenv opens the embedded backends for the tests of the packages
// above them: a fresh SQLite database in a temporary directory with the
// store and the queue on it, and a barrier under a random root key. Only
// tests import it.
package testenv

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"

	"github.com/idvault/idvault/internal/barrier"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/queue/sqlitequeue"
	"github.com/idvault/idvault/internal/sqlitedb"
	"github.com/idvault/idvault/internal/store/sqlite"
)

// Env is one test's embedded backends.
type Env struct {
	// Dir holds the database file DBPath.
	Dir     string
	DBPath  string
	DB      *sqlitedb.DB
	Backend *sqlite.Store
	Broker  *sqlitequeue.Broker
	Barrier *barrier.AESGCM
}

// RandomKey returns 32 random bytes.
func RandomKey(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		tb.Fatal(err)
	}
	return k
}

// Open opens a fresh Env with a broker of opts. Everything is closed when
// the test ends.
func Open(tb testing.TB, opts queue.Options) *Env {
	tb.Helper()
	ctx := context.Background()
	e := &Env{Dir: tb.TempDir()}
	e.DBPath = filepath.Join(e.Dir, "idvault.db")
	var err error
	if e.DB, err = sqlitedb.Open(ctx, e.DBPath); err != nil {
		tb.Fatalf("sqlitedb.Open() = %v", err)
	}
	tb.Cleanup(func() {
		if err := e.DB.Close(); err != nil {
			tb.Errorf("db.Close() = %v", err)
		}
	})
	if e.Backend, err = sqlite.New(ctx, e.DB); err != nil {
		tb.Fatalf("sqlite.New() = %v", err)
	}
	tb.Cleanup(func() { _ = e.Backend.Close() })
	if e.Broker, err = sqlitequeue.New(ctx, e.DB, opts); err != nil {
		tb.Fatalf("sqlitequeue.New() = %v", err)
	}
	tb.Cleanup(func() { _ = e.Broker.Close() })
	if e.Barrier, err = barrier.NewAESGCM(RandomKey(tb)); err != nil {
		tb.Fatalf("barrier.NewAESGCM() = %v", err)
	}
	return e
}
