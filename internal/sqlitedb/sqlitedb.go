// Package sqlitedb opens the embedded SQLite database that the embedded store
// and queue share, and applies each component's embedded, versioned schema
// migrations.
//
// The database runs in WAL mode with synchronous=FULL, so a committed
// transaction survives a process kill and a power loss; write transactions
// begin IMMEDIATE so concurrent writers (other processes sharing the file)
// wait on busy_timeout instead of failing on a lock upgrade. Within a
// process every write transaction runs through DB.Write, which commits the
// transactions of concurrent callers together on one connection.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// Open opens (creating if needed) the SQLite database at path, with its
// directory created 0700 and the file itself 0600. The caller owns the
// returned DB and MUST Close it.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlitedb: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlitedb: create directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: create file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlitedb: create file: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	// Temporary files, the savepoint journal of DB.Write among them, stay
	// in memory: spilled to disk, each shared transaction would create and
	// remove a file.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: open: %w", err)
	}
	// Keep every connection the pool opens: a new SQLite connection costs
	// opening the file, the pragmas and re-preparing each cached statement
	// on it, which under load (the default keeps 2 idle) cost more than
	// the queries themselves. WAL readers run in parallel. The writer
	// (DB.Write) keeps one connection of the pool for itself and, holding
	// the lock, never needs a second (see store/sqlite txExec).
	conns := max(32, 8*runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlitedb: open: %w", err)
	}
	return newDB(db), nil
}

// Migrate applies, in order and each in its own transaction, the migrations
// of component found in migrations: files named NNNN_description.sql at the
// root of the file system. Applied versions are recorded in the table
// schema_migrations, so Migrate is idempotent and safe to call at every
// start. A recorded version whose file is missing is an error (the binary is
// older than the database).
func Migrate(ctx context.Context, db *sql.DB, component string, migrations fs.FS) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL,
		version INTEGER NOT NULL,
		PRIMARY KEY (component, version))`); err != nil {
		return fmt.Errorf("sqlitedb: migrations table: %w", err)
	}
	files, err := fs.Glob(migrations, "*.sql")
	if err != nil {
		return fmt.Errorf("sqlitedb: list migrations: %w", err)
	}
	type migration struct {
		version int
		name    string
	}
	var all []migration
	for _, name := range files {
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return fmt.Errorf("sqlitedb: migration %q: name must be NNNN_description.sql", name)
		}
		all = append(all, migration{v, name})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].version < all[j].version })

	var maxApplied int
	if err := db.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?`, component).Scan(&maxApplied); err != nil {
		return fmt.Errorf("sqlitedb: read migrations: %w", err)
	}
	if n := len(all); maxApplied > 0 && (n == 0 || all[n-1].version < maxApplied) {
		return fmt.Errorf("sqlitedb: %s schema version %d is newer than this binary knows", component, maxApplied)
	}
	for _, m := range all {
		if m.version <= maxApplied {
			continue
		}
		script, err := fs.ReadFile(migrations, m.name)
		if err != nil {
			return fmt.Errorf("sqlitedb: read migration %s: %w", m.name, err)
		}
		if err := apply(ctx, db, component, m.version, string(script)); err != nil {
			return fmt.Errorf("sqlitedb: migration %s/%s: %w", component, m.name, err)
		}
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, component string, version int, script string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, script); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (component, version) VALUES (?, ?)`, component, version); err != nil {
		return err
	}
	return tx.Commit()
}
