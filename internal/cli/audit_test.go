package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/idvault/idvault/internal/audit"
	"github.com/idvault/idvault/internal/auditlog"
	"github.com/idvault/idvault/internal/config"
	"github.com/idvault/idvault/internal/identity"
	"github.com/idvault/idvault/internal/queue"
	"github.com/idvault/idvault/internal/server"
	"github.com/idvault/idvault/internal/sqlitedb"
)

// auditEnv signs a checkpoint after every append, so that each fill ends
// on a checkpoint, and fixes the origin that api.publicURL would derive.
var auditEnv = []string{"IDVAULT_AUDIT__CHECKPOINTEVERY=1", "IDVAULT_AUDIT__ORIGIN=" + testOrigin}

const testOrigin = "test.example/audit"

// auditDir runs init in a new data directory and returns it and the first
// tenant's id.
func auditDir(t *testing.T) (dir, tenant string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "data")
	code, out, errOut := run(t, auditEnv, "init", "--json", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("init = %d: %s", code, errOut)
	}
	var res struct{ TenantID string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.TenantID == "" {
		t.Fatalf("init --json = %q: %v", out, err)
	}
	return dir, res.TenantID
}

func openServer(t *testing.T, dir string) *server.Server {
	t.Helper()
	cfg, err := config.Load("", append([]string{"IDVAULT_DATADIR=" + dir}, auditEnv...))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Open(context.Background(), cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// testEvent is the i-th event of a fill: session.read for even i, file.read
// for odd.
func testEvent(tenant string, i int) audit.Event {
	action := "session.read"
	if i%2 == 1 {
		action = "file.read"
	}
	return audit.Event{ID: identity.NewID(), Tenant: tenant, Actor: audit.Actor{Type: "user", ID: "u-" + strconv.Itoa(i)},
		Action: action, Resource: audit.Resource{Type: "session", ID: "s-" + strconv.Itoa(i)}, Outcome: audit.Success}
}

// fillLog emits n events of tenant through the outbox, as handlers do, then
// moves the whole outbox (the events of CLI commands too) through the relay
// and the audit topic into the log, as the audit role does. It returns the
// ids of the n events.
func fillLog(t *testing.T, dir, tenant string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang fails instead of blocking
	defer cancel()
	srv := openServer(t, dir)
	defer srv.Close()
	ids := make([]string, n)
	for i := range ids {
		ev := testEvent(tenant, i)
		if err := srv.Audit.Emit(ctx, ev); err != nil {
			t.Fatal(err)
		}
		ids[i] = ev.ID
	}
	relay, err := audit.NewRelay(srv.Backend, srv.Barrier, srv.Broker, srv.Audit, srv.Log)
	if err != nil {
		t.Fatal(err)
	}
	consumer := audit.NewConsumer(srv.Broker, srv.Backend, srv.Barrier, audit.LogAppender(srv.AuditLog), srv.Log)
	for {
		moved, err := relay.Once(ctx)
		if err != nil {
			t.Fatalf("relay.Once() = %v", err)
		}
		if moved == 0 {
			return ids
		}
		d, err := srv.Broker.Receive(ctx, queue.TopicAudit)
		if err != nil {
			t.Fatalf("Receive(audit) = %v", err)
		}
		if err := consumer.Handle(ctx, d.Body()); err != nil {
			t.Fatalf("Handle() = %v", err)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkpointSize returns the size a saved checkpoint note states.
func checkpointSize(t *testing.T, signed string) int64 {
	t.Helper()
	lines := strings.SplitN(signed, "\n", 3)
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if len(lines) < 3 || err != nil {
		t.Fatalf("checkpoint %q has no size line", signed)
	}
	return n
}

func openDB(t *testing.T, dir string) *sqlitedb.DB {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), filepath.Join(dir, "idvault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestAuditHelp(t *testing.T) {
	for _, sub := range []string{"", "verify", "prove", "consistency", "check", "checkpoint", "export", "public-key", "keygen"} {
		args := []string{"audit", "--help"}
		if sub != "" {
			args = []string{"audit", sub, "--help"}
		}
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, _ := run(t, nil, args...)
			if code != 0 || !strings.Contains(out, "Usage") {
				t.Errorf("Run(%q) = %d, %q; want 0 and a usage text", args, code, out)
			}
		})
	}
	for _, args := range [][]string{{"audit"}, {"audit", "bogus"}, {"audit", "check"}, {"audit", "check", "--key", "k"},
		{"audit", "check", "--key", "k", "--key-file", "f", "p.json"}, {"audit", "keygen", "extra"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if code, _, _ := run(t, nil, args...); code != 2 {
				t.Errorf("Run(%q) = %d, want 2", args, code)
			}
		})
	}
}

// TestAuditVerifyProveCheck runs the auditor's procedure of
// docs/audit-log.md on a real data directory: save a checkpoint, verify
// against it, prove one event and check the proof offline, prove the log
// only grew; then an edited event makes verify fail naming its position.
func TestAuditVerifyProveCheck(t *testing.T) {
	dir, tenant := auditDir(t)
	work := t.TempDir()
	first := fillLog(t, dir, tenant, 6)

	code, cp1, errOut := run(t, auditEnv, "audit", "checkpoint", "--tenant", tenant, "--data-dir", dir)
	if code != 0 || !strings.HasPrefix(cp1, testOrigin+"/"+tenant+"\n") {
		t.Fatalf("audit checkpoint = %d, %q, %q", code, cp1, errOut)
	}
	cp1File := writeFile(t, filepath.Join(work, "cp1"), cp1)
	size1 := checkpointSize(t, cp1)
	fillLog(t, dir, tenant, 6)

	code, out, errOut := run(t, auditEnv, "audit", "verify", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, tenant+": verified ") || !strings.Contains(out, "up to checkpoint "+testOrigin+"/"+tenant+" (size ") {
		t.Fatalf("audit verify = %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = run(t, auditEnv, "audit", "verify", "--tenant", tenant, "--trusted", cp1File, "--json", "--data-dir", dir)
	var reports []auditlog.Report
	if err := json.Unmarshal([]byte(out), &reports); code != 0 || err != nil {
		t.Fatalf("audit verify --json = %d, %q, %q (%v)", code, out, errOut, err)
	}
	if len(reports) != 1 || !reports[0].Verified() || reports[0].Events < 12 || reports[0].Checkpoint == nil || reports[0].Checkpoint.Size != reports[0].Events {
		t.Fatalf("audit verify --json = %+v; want one verified report of at least 12 events up to a checkpoint", reports)
	}
	total := reports[0].Events

	code, pub, errOut := run(t, auditEnv, "audit", "public-key", "--data-dir", dir)
	pub = strings.TrimSpace(pub)
	if _, err := note.NewVerifier(pub); code != 0 || err != nil {
		t.Fatalf("audit public-key = %d, %q, %q (%v)", code, pub, errOut, err)
	}
	pubFile := writeFile(t, filepath.Join(work, "pub"), pub+"\n")

	code, proof, errOut := run(t, auditEnv, "audit", "prove", "--tenant", tenant, "--event", first[3], "--data-dir", dir)
	if code != 0 {
		t.Fatalf("audit prove = %d: %s", code, errOut)
	}
	proofFile := writeFile(t, filepath.Join(work, "proof.json"), proof)
	var position int64
	if err := json.Unmarshal([]byte(proof), &struct{ Index *int64 }{&position}); err != nil {
		t.Fatalf("audit prove printed %q: %v", proof, err)
	}

	t.Run("inclusion checks offline", func(t *testing.T) {
		// No configuration, no data directory: a config file that does not
		// exist and a data directory that must not appear.
		none := filepath.Join(work, "no-data-dir")
		env := []string{"IDVAULT_CONFIG=" + filepath.Join(work, "missing.yaml"), "IDVAULT_DATADIR=" + none}
		for _, args := range [][]string{{"--key", pub, proofFile}, {proofFile, "--key-file", pubFile}} {
			code, out, errOut := run(t, env, append([]string{"audit", "check"}, args...)...)
			if code != 0 || !strings.Contains(out, "inclusion proof OK") || !strings.Contains(out, first[3]) ||
				!strings.Contains(out, "file.read") || !strings.Contains(out, "tenant:     "+tenant) {
				t.Errorf("audit check %q = %d, %q, %q", args, code, out, errOut)
			}
		}
		if _, err := os.Stat(none); !os.IsNotExist(err) {
			t.Errorf("audit check touched the data directory: %v", err)
		}
	})

	t.Run("another key fails", func(t *testing.T) {
		code, other, errOut := run(t, nil, "audit", "keygen", "--name", testOrigin, "--out", filepath.Join(work, "other.key"))
		if code != 0 {
			t.Fatalf("audit keygen = %d: %s", code, errOut)
		}
		code, out, errOut := run(t, nil, "audit", "check", "--key", strings.TrimSpace(other), proofFile)
		if code != 1 || !strings.Contains(errOut, "does not verify") || strings.Contains(out, "OK") {
			t.Errorf("audit check with another key = %d, %q, %q; want 1 and does not verify", code, out, errOut)
		}
		signer, err := os.ReadFile(filepath.Join(work, "other.key"))
		if err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := run(t, nil, "audit", "check", "--key", strings.TrimSpace(string(signer)), proofFile); code != 1 || !strings.Contains(errOut, "private") {
			t.Errorf("audit check with a private key = %d, %q; want a refusal naming it private", code, errOut)
		}
	})

	t.Run("every flipped byte fails or changes nothing", func(t *testing.T) {
		var orig auditlog.InclusionProof
		if err := json.Unmarshal([]byte(proof), &orig); err != nil {
			t.Fatal(err)
		}
		flipped := filepath.Join(work, "flipped.json")
		failed := 0
		for i := range len(proof) {
			b := []byte(proof)
			b[i] ^= 0x01
			writeFile(t, flipped, string(b))
			code, _, _ := run(t, nil, "audit", "check", "--key", pub, flipped)
			if code == 0 {
				// Only a flip that decodes to the very same proof (a
				// base64 padding bit) may pass.
				var got auditlog.InclusionProof
				if err := json.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, orig) {
					t.Errorf("proof with byte %d (%q) flipped passed the check", i, proof[max(0, i-10):min(len(proof), i+10)])
				}
				continue
			}
			failed++
		}
		if failed < len(proof)*9/10 {
			t.Errorf("only %d of %d flipped proofs failed", failed, len(proof))
		}
	})

	t.Run("consistency", func(t *testing.T) {
		code, cons, errOut := run(t, auditEnv, "audit", "consistency", "--tenant", tenant, "--from", strconv.FormatInt(size1, 10), "--data-dir", dir)
		if code != 0 {
			t.Fatalf("audit consistency = %d: %s", code, errOut)
		}
		consFile := writeFile(t, filepath.Join(work, "cons.json"), cons)
		code, out, errOut := run(t, nil, "audit", "check", "--key", pub, consFile)
		want := fmt.Sprintf("the log of %d events begins with the log of %d events", total, size1)
		if code != 0 || !strings.Contains(out, "consistency proof OK") || !strings.Contains(out, want) {
			t.Errorf("audit check (consistency) = %d, %q, %q; want OK and %q", code, out, errOut, want)
		}
		var p auditlog.ConsistencyProof
		if err := json.Unmarshal([]byte(cons), &p); err != nil {
			t.Fatal(err)
		}
		p.Old, p.New = p.New, p.Old
		swapped, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if code, _, _ := run(t, nil, "audit", "check", "--key", pub, writeFile(t, filepath.Join(work, "swapped.json"), string(swapped))); code != 1 {
			t.Errorf("audit check (consistency, old and new swapped) = %d, want 1", code)
		}
		for from, want := range map[int64]string{size1 - 1: "no checkpoint of size", total + 1: "no larger than --to"} {
			code, _, errOut := run(t, auditEnv, "audit", "consistency", "--tenant", tenant, "--from", strconv.FormatInt(from, 10), "--data-dir", dir)
			if code != 1 || !strings.Contains(errOut, want) {
				t.Errorf("audit consistency --from %d = %d, %q; want 1 and %q", from, code, errOut, want)
			}
		}
	})

	t.Run("proof of an unknown event", func(t *testing.T) {
		code, _, errOut := run(t, auditEnv, "audit", "prove", "--tenant", tenant, "--event", "no-such-event", "--data-dir", dir)
		if code != 1 || !strings.Contains(errOut, `no event "no-such-event"`) {
			t.Errorf("audit prove (unknown event) = %d, %q", code, errOut)
		}
	})

	// The auditor's proofs are themselves audited (the failed ones are
	// not), once the audit role has appended the outbox.
	fillLog(t, dir, tenant, 0)
	code, out, errOut = run(t, auditEnv, "audit", "export", "--tenant", tenant, "--action", "audit.prove", "--data-dir", dir)
	var proves []audit.Event
	for _, l := range parseLines(t, out) {
		if l.Event.Actor.Type != "operator" {
			t.Errorf("audit.prove event by %+v, want the operator", l.Event.Actor)
		}
		proves = append(proves, audit.Event{Resource: l.Event.Resource, Details: l.Event.Details})
	}
	wantProves := []audit.Event{
		{Resource: audit.Resource{Type: "event", ID: first[3]}, Details: map[string]string{"position": strconv.FormatInt(position, 10)}},
		{Resource: audit.Resource{Type: "checkpoint", ID: strconv.FormatInt(total, 10)},
			Details: map[string]string{"from": strconv.FormatInt(size1, 10), "to": strconv.FormatInt(total, 10)}},
	}
	if code != 0 || !reflect.DeepEqual(proves, wantProves) {
		t.Errorf("export of audit.prove events = %d, %+v, %q; want %+v", code, proves, errOut, wantProves)
	}

	// An attacker with write access to the database edits the sealed leaf
	// of one event: verify names an edit at that position.
	db := openDB(t, dir)
	var batchID string
	var body []byte
	rows, err := db.Query(`SELECT id, body FROM store_records WHERE collection = 'auditlog.batch' AND tenant = ? ORDER BY id`, tenant)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() && batchID == "" {
		var id string
		var b []byte
		if err := rows.Scan(&id, &b); err != nil {
			t.Fatal(err)
		}
		if first := binary.BigEndian.Uint32(b); int(4+first) < len(b) {
			batchID, body = id, b // the first batch of at least two events
		}
	}
	if err := rows.Close(); err != nil || batchID == "" {
		t.Fatalf("no batch of two events: %v", err)
	}
	second := 4 + int(binary.BigEndian.Uint32(body))
	body[second+4+int(binary.BigEndian.Uint32(body[second:]))/2] ^= 0x01
	if _, err := db.Exec(`UPDATE store_records SET body = ? WHERE collection = 'auditlog.batch' AND tenant = ? AND id = ?`, body, tenant, batchID); err != nil {
		t.Fatal(err)
	}
	start, err := strconv.ParseInt(batchID, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s: PROBLEM edit at position %d", tenant, start+1)
	for _, args := range [][]string{{"--tenant", tenant}, {}} {
		code, out, errOut := run(t, auditEnv, append([]string{"audit", "verify", "--data-dir", dir}, args...)...)
		if code != 1 || !strings.Contains(out, want) || !strings.Contains(errOut, "found a problem in 1 of") {
			t.Errorf("audit verify %q after an edit = %d, %q, %q; want 1 and %q", args, code, out, errOut, want)
		}
	}
}

// TestAuditSavedCheckpoints shows what only checkpoints saved outside the
// database catch: a rollback of the whole database, a log deleted whole,
// and a rewritten history; and that a forged saved checkpoint is named.
func TestAuditSavedCheckpoints(t *testing.T) {
	dir, tenant := auditDir(t)
	work := t.TempDir()
	fillLog(t, dir, tenant, 4)
	backup := filepath.Join(work, "backup")
	copyDB(t, dir, backup)
	fillLog(t, dir, tenant, 4)
	code, cp, errOut := run(t, auditEnv, "audit", "checkpoint", "--tenant", tenant, "--data-dir", dir)
	if code != 0 {
		t.Fatalf("audit checkpoint = %d: %s", code, errOut)
	}
	cpFile := writeFile(t, filepath.Join(work, "cp"), cp)
	size := checkpointSize(t, cp)

	t.Run("forged", func(t *testing.T) {
		// Signed with the log's own key but for another tree: a second
		// history, named a fork.
		skey, err := os.ReadFile(filepath.Join(dir, "keys", "audit", "signing.key"))
		if err != nil {
			t.Fatal(err)
		}
		fork := signCheckpoint(t, strings.TrimSpace(string(skey)), tenant, size)
		// Signed by another key: a bad signature.
		other, _, err := auditlog.GenerateKey(testOrigin)
		if err != nil {
			t.Fatal(err)
		}
		bad := signCheckpoint(t, other, tenant, size)
		for _, c := range []struct{ note, want string }{
			{fork, fmt.Sprintf("PROBLEM fork at position %d", size)},
			{bad, fmt.Sprintf("PROBLEM bad-signature at position %d", size)},
		} {
			f := writeFile(t, filepath.Join(work, "forged"), c.note)
			code, out, errOut := run(t, auditEnv, "audit", "verify", "--tenant", tenant, "--trusted", f, "--data-dir", dir)
			if code != 1 || !strings.Contains(out, c.want) {
				t.Errorf("audit verify --trusted (forged) = %d, %q, %q; want 1 and %q", code, out, errOut, c.want)
			}
		}
		if code, _, errOut := run(t, auditEnv, "audit", "verify", "--tenant", "other", "--trusted", cpFile, "--data-dir", dir); code != 1 || !strings.Contains(errOut, "not \"other\"'s") {
			t.Errorf("audit verify --tenant other --trusted (of %s) = %d, %q; want a refusal", tenant, code, errOut)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		restored := filepath.Join(work, "restored")
		copyDB(t, backup, restored)
		copyKeys(t, dir, restored)
		// Nothing in a consistent old database shows it is old…
		if code, out, errOut := run(t, auditEnv, "audit", "verify", "--tenant", tenant, "--data-dir", restored); code != 0 {
			t.Fatalf("audit verify of the restored backup = %d, %q, %q", code, out, errOut)
		}
		// …but the checkpoint saved since counts more events.
		code, out, errOut := run(t, auditEnv, "audit", "verify", "--tenant", tenant, "--trusted", cpFile, "--data-dir", restored)
		if code != 1 || !strings.Contains(out, "PROBLEM truncated") {
			t.Errorf("audit verify --trusted of the restored backup = %d, %q, %q; want 1 and truncated", code, out, errOut)
		}
	})

	t.Run("log deleted whole", func(t *testing.T) {
		db := openDB(t, dir)
		if _, err := db.Exec(`DELETE FROM store_records WHERE collection LIKE 'auditlog.%' AND (tenant = ? OR id = ?)`, tenant, tenant); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := run(t, auditEnv, "audit", "verify", "--tenant", tenant, "--data-dir", dir); code != 1 || !strings.Contains(errOut, "has no audit log") {
			t.Errorf("audit verify of a deleted log = %d, %q; want 1 and no audit log", code, errOut)
		}
		code, out, errOut := run(t, auditEnv, "audit", "verify", "--trusted", cpFile, "--data-dir", dir)
		if code != 1 || !strings.Contains(out, tenant+": PROBLEM truncated at position 0") {
			t.Errorf("audit verify --trusted of a deleted log = %d, %q, %q; want the tenant named truncated", code, out, errOut)
		}
	})
}

// signCheckpoint signs a checkpoint of tenant's log of size events with a
// root that no log has.
func signCheckpoint(t *testing.T, signerKey, tenant string, size int64) string {
	t.Helper()
	signer, err := note.NewSigner(signerKey)
	if err != nil {
		t.Fatal(err)
	}
	root := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	signed, err := note.Sign(&note.Note{Text: fmt.Sprintf(testOrigin+"/%s\n%d\n%s\n", tenant, size, root)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// copyDB copies the SQLite files of data directory from (closed) into to.
func copyDB(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	matches, err := filepath.Glob(filepath.Join(from, "idvault.db*"))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no database in %s: %v", from, err)
	}
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(to, filepath.Base(m)), string(b))
	}
}

// copyKeys copies the root and audit keys of a dev data directory.
func copyKeys(t *testing.T, from, to string) {
	t.Helper()
	for _, k := range []string{"root.key", filepath.Join("audit", "signing.key")} {
		b, err := os.ReadFile(filepath.Join(from, "keys", k))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(to, "keys", k)), 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(to, "keys", k), string(b))
	}
}

// TestAuditExport exports more than one page of events and checks every
// line, the file's mode, the filters and the export's own audit event.
func TestAuditExport(t *testing.T) {
	ctx := context.Background()
	dir, tenant := auditDir(t)
	fillLog(t, dir, tenant, 0) // init's own events
	const n = 1205             // more than store.MaxLimit: several pages
	srv := openServer(t, dir)
	evs := make([]audit.Opened, n)
	ids := map[string]bool{}
	for i := range evs {
		ev := testEvent(tenant, i)
		ev.Time = time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)
		data, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		evs[i], ids[ev.ID] = audit.Opened{Event: ev, Data: data}, true
	}
	if err := audit.LogAppender(srv.AuditLog)(ctx, evs); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	work := t.TempDir()

	out := filepath.Join(work, "all.ndjson")
	code, stdout, errOut := run(t, auditEnv, "audit", "export", "--tenant", tenant, "--out", out, "--data-dir", dir)
	if code != 0 || stdout != "" {
		t.Fatalf("audit export = %d, %q, %q", code, stdout, errOut)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	lines := exportLines(t, out)
	if want := fmt.Sprintf("exported %d events", len(lines)); !strings.Contains(errOut, want) {
		t.Errorf("audit export stderr = %q, want %q", errOut, want)
	}
	found := 0
	for i, l := range lines {
		if l.Tenant != tenant || l.Index != int64(i) || l.Event.Tenant != tenant {
			t.Fatalf("line %d = tenant %q index %d (event of %q); want %q, %d", i, l.Tenant, l.Index, l.Event.Tenant, tenant, i)
		}
		if ids[l.Event.ID] {
			found++
		}
	}
	if found != n {
		t.Errorf("export holds %d of the %d appended events", found, n)
	}
	code, stdout, errOut = run(t, auditEnv, "audit", "verify", "--tenant", tenant, "--json", "--data-dir", dir)
	var reports []auditlog.Report
	if err := json.Unmarshal([]byte(stdout), &reports); code != 0 || err != nil || len(reports) != 1 || reports[0].Events != int64(len(lines)) {
		t.Errorf("export wrote %d lines; verify = %d, %q, %q", len(lines), code, stdout, errOut)
	}

	if code, _, errOut := run(t, auditEnv, "audit", "export", "--tenant", tenant, "--out", out, "--data-dir", dir); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Errorf("audit export over an existing file = %d, %q; want a refusal", code, errOut)
	}
	if got := exportLines(t, out); len(got) != len(lines) {
		t.Errorf("the refused export changed the file: %d lines, want %d", len(got), len(lines))
	}

	reads := filepath.Join(work, "reads.ndjson")
	from, to := "2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"
	if code, _, errOut := run(t, auditEnv, "audit", "export", "--tenant", tenant, "--action", "file.read", "--from", from, "--to", to, "--out", reads, "--data-dir", dir); code != 0 {
		t.Fatalf("audit export --action --from --to = %d: %s", code, errOut)
	}
	filtered := exportLines(t, reads)
	if len(filtered) != 150 { // odd seconds in [300, 600)
		t.Errorf("export of file.read in 5 minutes = %d lines, want 150", len(filtered))
	}
	for _, l := range filtered {
		if l.Event.Action != "file.read" || l.Event.Time.Before(time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)) || !l.Event.Time.Before(time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)) {
			t.Errorf("filtered export holds %+v", l.Event)
		}
	}
	for _, args := range [][]string{{"--from", "yesterday"}, {"--from", to, "--to", from}} {
		if code, _, errOut := run(t, auditEnv, append([]string{"audit", "export", "--tenant", tenant, "--data-dir", dir}, args...)...); code != 1 || !strings.Contains(errOut, "--from") {
			t.Errorf("audit export %q = %d, %q; want a refusal naming --from", args, code, errOut)
		}
	}

	// Both exports are audited, with their filters and no personal data;
	// the refused one is not.
	fillLog(t, dir, tenant, 0)
	code, stdout, errOut = run(t, auditEnv, "audit", "export", "--action", "audit.export", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("audit export (all logs) = %d: %s", code, errOut)
	}
	var got []map[string]string
	for _, l := range parseLines(t, stdout) {
		if l.Event.Tenant != tenant || l.Event.Actor.Type != "operator" || l.Event.Resource != (audit.Resource{Type: "audit", ID: tenant}) {
			t.Errorf("audit.export event = %+v", l.Event)
		}
		got = append(got, l.Event.Details)
	}
	want := []map[string]string{{"tenant": tenant}, {"tenant": tenant, "action": "file.read", "from": from, "to": to}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("audit.export events have details %v, want %v", got, want)
	}
}

type exportLine struct {
	Tenant string
	Index  int64
	Event  audit.Event
}

func exportLines(t *testing.T, path string) []exportLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseLines(t, string(b))
}

func parseLines(t *testing.T, s string) []exportLine {
	t.Helper()
	var out []exportLine
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var l exportLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAuditKeygen(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "signing.key")
	code, pub, errOut := run(t, nil, "audit", "keygen", "--name", "id.example.com/audit", "--out", out)
	if code != 0 {
		t.Fatalf("audit keygen = %d: %s", code, errOut)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	key, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := auditlog.VerifierFromSigner(strings.TrimSpace(string(key)))
	if err != nil || strings.TrimSpace(pub) != want || !strings.HasPrefix(want, "id.example.com/audit+") {
		t.Errorf("audit keygen printed %q; the key file's public key is %q (%v)", pub, want, err)
	}
	if code, _, errOut := run(t, nil, "audit", "keygen", "--name", "again", "--out", out); code != 1 || !strings.Contains(errOut, "refusing to overwrite") {
		t.Errorf("audit keygen over an existing key = %d, %q; want a refusal", code, errOut)
	}
	if again, err := os.ReadFile(out); err != nil || !bytes.Equal(again, key) {
		t.Errorf("the refused keygen changed the key file: %v", err)
	}
	code, both, _ := run(t, nil, "audit", "keygen", "--name", "x")
	lines := strings.Split(strings.TrimSpace(both), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "PRIVATE+KEY+x+") {
		t.Fatalf("audit keygen without --out = %d, %q", code, both)
	}
	if v, err := auditlog.VerifierFromSigner(lines[0]); err != nil || v != lines[1] {
		t.Errorf("audit keygen without --out: public key %q, want %q (%v)", lines[1], v, err)
	}
	for _, name := range []string{"", "has space", "a+b"} {
		if code, _, _ := run(t, nil, "audit", "keygen", "--name", name, "--out", filepath.Join(dir, "k")); code != 1 {
			t.Errorf("audit keygen --name %q = %d, want 1", name, code)
		}
	}
	// A production deployment signs with the made key.
	data := filepath.Join(dir, "data")
	env := []string{"IDVAULT_AUDIT__SIGNINGKEY=file:" + out}
	if code, _, errOut := run(t, env, "init", "--json", "--data-dir", data); code != 0 {
		t.Fatalf("init with audit.signingKey = %d: %s", code, errOut)
	}
	if code, got, errOut := run(t, env, "audit", "public-key", "--data-dir", data); code != 0 || strings.TrimSpace(got) != want {
		t.Errorf("audit public-key with audit.signingKey = %d, %q, %q; want %q", code, got, errOut, want)
	}
}

// TestAuditNoSigningKey runs the log commands on a data directory whose
// checkpoint signing key is gone: each says so.
func TestAuditNoSigningKey(t *testing.T) {
	dir, tenant := auditDir(t)
	if err := os.Remove(filepath.Join(dir, "keys", "audit", "signing.key")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"verify"}, {"public-key"}, {"checkpoint", "--tenant", tenant}, {"export"}, {"prove", "--tenant", tenant, "--event", "x"}} {
		code, _, errOut := run(t, nil, append(append([]string{"audit"}, args...), "--data-dir", dir)...)
		if code != 1 || !strings.Contains(errOut, "no checkpoint signing key") {
			t.Errorf("audit %q without a signing key = %d, %q", args, code, errOut)
		}
	}
}
